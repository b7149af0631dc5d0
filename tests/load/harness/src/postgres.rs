//! The PostgreSQL cluster of the scale-out and storage scenarios: started by `bench.sh`
//! (`scripts/pg-cluster.sh` with `PG_CLUSTER_DURABLE=1`, pinned with the servers) and handed
//! over in `BENCH_POSTGRES_URL` / `BENCH_POSTGRES_DIR`. Each run gets a database of its own,
//! dropped afterwards; the CPU time of the whole cluster (postmaster, backends, background
//! workers) is read from `/proc`.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the report says about the cluster next to every PostgreSQL figure.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PostgresInfo {
    /// `SELECT version()`, shortened to its first words.
    pub version: String,
    /// `(setting, value)` of the settings that decide durability and commit cost.
    pub settings: Vec<(String, String)>,
}

impl PostgresInfo {
    /// Whether every commit is flushed to disk before it is acknowledged.
    pub fn durable(&self) -> bool {
        let on = |name: &str| self.settings.iter().any(|(n, v)| n == name && v == "on");
        on("fsync") && on("synchronous_commit")
    }

    /// `fsync=on, synchronous_commit=on, …` for the report.
    pub fn describe(&self) -> String {
        self.settings.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(", ")
    }
}

/// A running cluster.
#[derive(Debug)]
pub struct Postgres {
    /// `postgres://postgres@127.0.0.1:PORT`, without a database.
    base: String,
    postmaster: u32,
    psql: PathBuf,
    next: AtomicU32,
}

/// A database of its own for one run.
#[derive(Debug, Clone)]
pub struct Database {
    /// Its URL, for `TIDINGS_DATABASE_URL`.
    pub url: String,
    name: String,
}

impl Postgres {
    /// The cluster `bench.sh` started, if it did.
    pub fn from_env() -> io::Result<Option<Postgres>> {
        let (Ok(url), Ok(dir)) =
            (std::env::var("BENCH_POSTGRES_URL"), std::env::var("BENCH_POSTGRES_DIR"))
        else {
            return Ok(None);
        };
        let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base).to_owned();
        let pidfile = std::fs::read_to_string(PathBuf::from(dir).join("data/postmaster.pid"))?;
        let postmaster = pidfile
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no pid in postmaster.pid"))?;
        let psql = std::env::var_os("BENCH_PSQL").map_or_else(|| "psql".into(), PathBuf::from);
        Ok(Some(Postgres { base, postmaster, psql, next: AtomicU32::new(0) }))
    }

    /// Run one SQL command on the `postgres` database; its output, trimmed.
    fn sql(&self, sql: &str) -> io::Result<String> {
        let out = Command::new(&self.psql)
            .arg(format!("{}/postgres", self.base))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "psql `{sql}`: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Version and durability settings.
    pub fn info(&self) -> io::Result<PostgresInfo> {
        let version = self.sql("SELECT version()")?;
        let version = version.split(" on ").next().unwrap_or(&version).to_owned();
        let mut settings = Vec::new();
        for name in ["fsync", "synchronous_commit", "full_page_writes", "wal_sync_method"] {
            settings.push((name.to_owned(), self.sql(&format!("SHOW {name}"))?));
        }
        Ok(PostgresInfo { version, settings })
    }

    /// A new, empty database.
    pub fn create_database(&self) -> io::Result<Database> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("bench_{}_{n}", std::process::id());
        self.sql(&format!("CREATE DATABASE {name}"))?;
        Ok(Database { url: format!("{}/{name}", self.base), name })
    }

    /// Drop `database` (its servers must be stopped; any connection left is ended).
    pub fn drop_database(&self, database: &Database) {
        if let Err(e) = self.sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.name))
        {
            eprintln!("  (could not drop {}: {e})", database.name);
        }
    }

    /// CPU time of the whole cluster so far.
    pub fn cpu(&self) -> Duration {
        crate::server::tree_cpu_time(self.postmaster).unwrap_or_default()
    }
}

//! What a scenario runs against: one server process, or several tidings processes on one
//! PostgreSQL database, with the CPU time of each part read from `/proc`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::postgres::{Database, Postgres};
use crate::server::{Kind, Options, Programs, Server};

/// Where tidings keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// A SQLite file of its own (`synchronous=FULL`).
    Sqlite,
    /// A database of its own on the benchmark's PostgreSQL cluster.
    Postgres,
}

impl Backend {
    /// Name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// How many tidings processes on which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Topology {
    /// The storage.
    pub backend: Backend,
    /// tidings processes sharing it (more than one needs PostgreSQL).
    pub processes: usize,
}

impl Topology {
    /// One process on SQLite: what every other scenario runs.
    pub const SQLITE: Topology = Topology { backend: Backend::Sqlite, processes: 1 };

    /// "1 × SQLite", "2 × PostgreSQL".
    pub fn name(self) -> String {
        format!("{} × {}", self.processes, self.backend.name())
    }
}

/// Running server processes (and the database they share).
pub struct Deployment {
    /// Where events are published and the head is read: the first process.
    pub addr: SocketAddr,
    servers: Vec<Server>,
    database: Option<(Arc<Postgres>, Database)>,
}

impl Deployment {
    /// Start one `kind` server on its own storage.
    pub async fn single(kind: Kind, programs: &Programs, options: &Options) -> io::Result<Self> {
        let server = Server::start(kind, programs, options).await?;
        Ok(Deployment { addr: server.addr, servers: vec![server], database: None })
    }

    /// Start `topology.processes` tidings processes on a fresh database of `topology.backend`,
    /// one after the other (each migrates the database when it starts).
    pub async fn tidings(
        topology: Topology,
        programs: &Programs,
        options: &Options,
        postgres: Option<&Arc<Postgres>>,
    ) -> io::Result<Self> {
        if topology.backend == Backend::Sqlite {
            if topology.processes != 1 {
                return Err(io::Error::other("several processes need PostgreSQL"));
            }
            return Deployment::single(Kind::Tidings, programs, options).await;
        }
        let postgres = postgres.ok_or_else(|| {
            io::Error::other("no PostgreSQL cluster (bench.sh starts one: BENCH_POSTGRES_URL)")
        })?;
        let database = postgres.create_database()?;
        let options = Options { database_url: Some(database.url.clone()), ..options.clone() };
        let mut deployment =
            Deployment { addr: ([127, 0, 0, 1], 0).into(), servers: Vec::new(), database: None };
        deployment.database = Some((postgres.clone(), database));
        for _ in 0..topology.processes.max(1) {
            match Server::start(Kind::Tidings, programs, &options).await {
                Ok(server) => deployment.servers.push(server),
                Err(e) => {
                    deployment.stop().await;
                    return Err(e);
                }
            }
        }
        deployment.addr = deployment.servers[0].addr;
        Ok(deployment)
    }

    /// Every process's address, the publishing one first.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }

    /// The first process's id.
    pub fn pid(&self) -> u32 {
        self.servers[0].pid
    }

    /// Resident memory of the first process, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.servers[0].rss_kib()
    }

    /// CPU time of each part so far: every server process, then PostgreSQL if used.
    pub fn cpu_parts(&self) -> Vec<(String, Duration)> {
        let several = self.servers.len() > 1;
        let mut parts: Vec<(String, Duration)> = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let name = if several {
                    format!("{} {}", s.kind.name(), if i == 0 { "A (publishing)" } else { "B" })
                } else {
                    s.kind.name().to_owned()
                };
                (name, s.cpu())
            })
            .collect();
        if let Some((postgres, _)) = &self.database {
            parts.push(("PostgreSQL".into(), postgres.cpu()));
        }
        parts
    }

    /// CPU time of every part together.
    pub fn cpu(&self) -> Duration {
        self.cpu_parts().into_iter().map(|(_, d)| d).sum()
    }

    /// Stop every process and drop the database.
    pub async fn stop(self) {
        for server in self.servers {
            server.stop().await;
        }
        if let Some((postgres, database)) = self.database {
            postgres.drop_database(&database);
        }
    }
}

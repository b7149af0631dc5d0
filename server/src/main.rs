//! `tidings-server`: run the reference server configured from the environment.

use std::process::ExitCode;

#[rocket::main]
async fn main() -> ExitCode {
    let launched = match tidings_server::rocket().await {
        Ok(rocket) => rocket.launch().await.map(drop).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match launched {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tidings-server: {message}");
            ExitCode::FAILURE
        }
    }
}

//! `tidings-server`: run the reference server configured from the environment.

#[rocket::launch]
fn launch() -> _ {
    tidings_server::rocket()
}

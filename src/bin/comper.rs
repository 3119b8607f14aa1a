//! The `comper` command line: a thin layer over the library.
fn main() {
    eprintln!("comper: no commands yet");
    std::process::exit(2);
}

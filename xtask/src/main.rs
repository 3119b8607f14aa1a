//! `cargo xtask bundle comper-plugin --release`: builds the CLAP and VST3 bundles with
//! nice-plug's bundler (names from `bundler.toml`).

fn main() -> nice_plug_xtask::Result<()> {
    nice_plug_xtask::main()
}

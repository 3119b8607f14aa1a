//! Comper without a DAW: `comper-standalone --backend jack|alsa|dummy …` (nice-plug's options).

fn main() {
    nice_plug::nice_export_standalone::<comper_plugin::Comper>();
}

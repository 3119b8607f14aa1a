//! Real-time melody quantizer. Filled in by the music-core work.

//! The ReaLchords decoder in candle. Filled in by the model work.

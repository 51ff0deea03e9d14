//! (encoder work in progress: owned by the encoder task)

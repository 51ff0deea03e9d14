//! (corpus work in progress)

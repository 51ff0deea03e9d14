//! Vocabulary merging.

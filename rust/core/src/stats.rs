//! (stats work in progress)

//! The experiment store (work in progress: the model is in [`model`]).

pub mod model;

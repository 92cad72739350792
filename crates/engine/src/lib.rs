//! berth-engine (see ../../../shared/DESIGN.md).

pub mod build;

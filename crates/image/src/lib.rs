//! berth-image (see ../../../shared/DESIGN.md).

pub mod containerfile;
pub mod registry;

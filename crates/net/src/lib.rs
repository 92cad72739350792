//! berth-net (see ../../../shared/DESIGN.md).

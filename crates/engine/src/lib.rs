//! berth-engine (see ../../../shared/DESIGN.md).

//! berth-runtime (see ../../../shared/DESIGN.md).

//! berth-image (see ../../../shared/DESIGN.md).

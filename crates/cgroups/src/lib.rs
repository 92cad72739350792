//! berth-cgroups (see ../../../shared/DESIGN.md).

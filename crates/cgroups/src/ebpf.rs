//! cgroup v2 device control: a `BPF_PROG_TYPE_CGROUP_DEVICE` program built
//! from the device rules and attached to the container's cgroup (the
//! runc/crun approach; v2 has no devices.allow file).
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` where `access_type = (access << 16) | type`
//! (include/uapi/linux/bpf.h) and returns 1 to allow, 0 to deny. It encodes
//! a [`DeviceState`] — what v1's device controller would hold after the same
//! rules — so both versions enforce the same thing: with a default-deny state
//! a request is allowed when an exception covers all its access bits; with
//! default-allow it is denied when an exception shares any bit with it.

use crate::Error;
use crate::devices::{DeviceState, Kind};
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One eBPF instruction (struct bpf_insn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (include/uapi/linux/bpf_common.h, bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_JEQ_K: u8 = 0x15;
const JMP_EXIT: u8 = 0x95;

const DEV_BLOCK: i32 = 1; // BPF_DEVCG_DEV_BLOCK
const DEV_CHAR: i32 = 2; // BPF_DEVCG_DEV_CHAR

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// Builds the filter for a device state. Registers: r2 type, r3 access,
/// r4 major, r5 minor. Each exception is a block whose conditional jumps
/// skip to the next block; a full match returns the opposite of the default.
pub(crate) fn assemble(state: &DeviceState) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for ex in &state.exceptions {
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps = Vec::new();
        let t = if ex.kind == Kind::Block {
            DEV_BLOCK
        } else {
            DEV_CHAR
        };
        jumps.push(block.len());
        block.push(insn(JMP_JNE_K, 2, 0, 0, t));
        let access = i32::from(ex.access & 7);
        if access != 7 {
            block.push(insn(ALU64_MOV_X, 6, 3, 0, 0));
            jumps.push(block.len() + 1);
            if state.default_allow {
                // A deny exception matches a request needing any of its bits.
                block.push(insn(ALU64_AND_K, 6, 0, 0, access));
                block.push(insn(JMP_JEQ_K, 6, 0, 0, 0));
            } else {
                // An allow exception matches a request needing only its bits.
                block.push(insn(ALU64_AND_K, 6, 0, 0, !access & 7));
                block.push(insn(JMP_JNE_K, 6, 0, 0, 0));
            }
        }
        if let Some(major) = ex.major {
            jumps.push(block.len());
            block.push(insn(JMP_JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = ex.minor {
            jumps.push(block.len());
            block.push(insn(JMP_JNE_K, 5, 0, 0, minor as i32));
        }
        block.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(!state.default_allow)));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for j in &jumps {
            block[*j].off = (len - j - 1) as i16;
        }
        prog.extend(block);
    }
    prog.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(state.default_allow)));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}

/// Encodes instructions as the kernel's 8-byte struct bpf_insn.
pub(crate) fn encode(prog: &[Insn]) -> Vec<u64> {
    prog.iter()
        .map(|i| {
            let mut b = [0u8; 8];
            b[0] = i.code;
            b[1] = (i.src << 4) | (i.dst & 0xf);
            b[2..4].copy_from_slice(&i.off.to_le_bytes());
            b[4..8].copy_from_slice(&i.imm.to_le_bytes());
            u64::from_le_bytes(b)
        })
        .collect()
}

/// Interprets the program on one request, as the kernel would: used to test
/// the assembler without a kernel.
#[cfg(test)]
pub(crate) fn run(prog: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
    let ctx = [(access << 16) | typ, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let (d, s) = (i.dst as usize, i.src as usize);
        pc += 1;
        match i.code {
            LDX_MEM_W => r[d] = u64::from(ctx[i.off as usize / 4]),
            ALU64_AND_K => r[d] &= i.imm as i64 as u64,
            ALU64_RSH_K => r[d] >>= i.imm,
            ALU64_MOV_K => r[d] = i.imm as i64 as u64,
            ALU64_MOV_X => r[d] = r[s],
            JMP_JNE_K if r[d] != i.imm as i64 as u64 => pc += i.off as usize,
            JMP_JEQ_K if r[d] == i.imm as i64 as u64 => pc += i.off as usize,
            JMP_JNE_K | JMP_JEQ_K => {}
            JMP_EXIT => return r[0],
            other => panic!("unknown opcode {other:#x}"),
        }
    }
}

// bpf(2) commands and constants (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The name berth gives its programs, so an update replaces only berth's.
pub(crate) const PROG_NAME: &str = "berth_devices";

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// # Safety
/// `attr` must point to a bpf_attr variant valid for `cmd`, and every
/// pointer inside it must be valid for the kernel to read/write.
unsafe fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: the caller guarantees attr matches cmd; size is its own size.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: bpf(2) returned a new file descriptor we own exclusively.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Loads the program; on failure retries with the verifier log.
pub(crate) fn load(prog: &[Insn]) -> Result<OwnedFd, Error> {
    let code = encode(prog);
    let license: &CStr = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..PROG_NAME.len()].copy_from_slice(PROG_NAME.as_bytes());
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    // SAFETY: attr is a PROG_LOAD attr; insns and license outlive the call.
    match unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) } {
        Ok(fd) => Ok(owned(fd)),
        Err(first) => {
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            // SAFETY: as above; log is writable for log_size bytes.
            let _ = unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) };
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_owned();
            Err(Error::Bpf {
                op: "load device program",
                source: first,
                log: if text.is_empty() {
                    String::new()
                } else {
                    format!("; verifier: {text}")
                },
            })
        }
    }
}

/// Ids of the device programs attached directly to the cgroup.
fn query(cgroup: &OwnedFd) -> Result<Vec<u32>, Error> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: attr is a PROG_QUERY attr; ids is writable for prog_cnt u32s.
    unsafe { sys_bpf(BPF_PROG_QUERY, &mut attr) }.map_err(|source| Error::Bpf {
        op: "query attached device programs",
        source,
        log: String::new(),
    })?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

fn prog_fd(id: u32) -> std::io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    // SAFETY: attr is a PROG_GET_FD_BY_ID attr with no pointers.
    unsafe { sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }.map(owned)
}

fn prog_name(fd: &OwnedFd) -> std::io::Result<String> {
    // struct bpf_prog_info: name[16] sits at byte offset 64.
    let mut info = [0u8; 96];
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: attr is an OBJ_GET_INFO_BY_FD attr; info is writable for info_len bytes.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    let name = &info[64..80];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

fn attach_cmd(
    cmd: libc::c_long,
    cgroup: &OwnedFd,
    prog: &OwnedFd,
    flags: u32,
) -> std::io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        ..Default::default()
    };
    // SAFETY: attr is a PROG_ATTACH/PROG_DETACH attr with no pointers.
    unsafe { sys_bpf(cmd, &mut attr) }.map(|_| ())
}

/// Attaches a new filter for `rules` to the cgroup, then detaches berth's
/// previous filters (so there is no window without one). Programs attached
/// by others are left alone.
pub(crate) fn install(cgroup: &OwnedFd, state: &DeviceState) -> Result<(), Error> {
    let before = query(cgroup)?;
    let prog = load(&assemble(state))?;
    attach_cmd(BPF_PROG_ATTACH, cgroup, &prog, BPF_F_ALLOW_MULTI).map_err(|source| Error::Bpf {
        op: "attach device program",
        source,
        log: String::new(),
    })?;
    for id in before {
        let Ok(old) = prog_fd(id) else { continue };
        if prog_name(&old).is_ok_and(|n| n == PROG_NAME) {
            attach_cmd(BPF_PROG_DETACH, cgroup, &old, 0).map_err(|source| Error::Bpf {
                op: "detach previous device program",
                source,
                log: String::new(),
            })?;
        }
    }
    Ok(())
}

/// Number of berth device programs attached to the cgroup.
pub(crate) fn attached_count(cgroup: &OwnedFd) -> Result<usize, Error> {
    let mut n = 0;
    for id in query(cgroup)? {
        if let Ok(fd) = prog_fd(id)
            && prog_name(&fd).is_ok_and(|n| n == PROG_NAME)
        {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{ACC_MKNOD, ACC_READ, ACC_WRITE, normalize_all};
    use oci_spec::runtime::LinuxDeviceCgroup;

    fn state(json: &str) -> DeviceState {
        let d: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        DeviceState::from_rules(&normalize_all(&d).unwrap())
    }
    const C: u32 = 2;
    const B: u32 = 1;

    #[test]
    fn deny_all_then_allow_null() {
        let p = assemble(&state(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]"#,
        ));
        let rw = u32::from(ACC_READ | ACC_WRITE);
        assert_eq!(run(&p, C, rw, 1, 3), 1);
        assert_eq!(run(&p, C, u32::from(ACC_READ), 1, 3), 1);
        assert_eq!(
            run(&p, C, u32::from(ACC_MKNOD), 1, 3),
            0,
            "mknod not granted"
        );
        assert_eq!(run(&p, C, rw, 1, 5), 0);
        assert_eq!(run(&p, B, rw, 1, 3), 0);
        assert_eq!(p.last().unwrap().code, JMP_EXIT);
    }

    #[test]
    fn later_rules_override_and_wildcards() {
        let p = assemble(&state(
            r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":5,"access":"w"},{"allow":true,"type":"c","major":136,"access":"rwm"}]"#,
        ));
        assert_eq!(
            run(&p, C, u32::from(ACC_READ), 1, 5),
            1,
            "read of 1:5 still allowed"
        );
        assert_eq!(
            run(&p, C, u32::from(ACC_READ | ACC_WRITE), 1, 5),
            0,
            "write denied"
        );
        assert_eq!(run(&p, C, u32::from(ACC_READ), 136, 9), 1);
        assert_eq!(
            run(&p, B, u32::from(ACC_WRITE), 8, 0),
            1,
            "base rule allows all"
        );
    }

    #[test]
    fn empty_rules_deny_everything() {
        let p = assemble(&DeviceState::from_rules(&[]));
        assert_eq!(run(&p, C, 2, 1, 3), 0);
    }

    #[test]
    fn defaults_allow_standard_nodes_only() {
        let mut list: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":false,"access":"rwm"}]"#).unwrap();
        list.extend(crate::default_devices());
        let p = assemble(&DeviceState::from_rules(&normalize_all(&list).unwrap()));
        assert_eq!(run(&p, C, u32::from(ACC_READ | ACC_WRITE), 1, 9), 1);
        assert_eq!(
            run(&p, C, u32::from(ACC_MKNOD), 4, 1),
            1,
            "mknod of any char node"
        );
        assert_eq!(
            run(&p, C, u32::from(ACC_READ), 4, 1),
            0,
            "but no access to it"
        );
        assert_eq!(run(&p, B, u32::from(ACC_READ), 8, 0), 0);
    }

    /// The program and the v1 emulation agree on every request.
    #[test]
    fn program_matches_the_v1_state() {
        let lists = [
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"minor":3,"access":"r"},{"allow":true,"type":"c","major":1,"minor":3,"access":"w"}]"#,
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":5,"access":"rwm"},{"allow":true,"type":"b","minor":0,"access":"m"}]"#,
            r#"[{"allow":true},{"allow":false,"type":"b","major":8,"access":"w"},{"allow":false,"type":"c","major":1,"minor":3,"access":"rm"}]"#,
            r#"[{"allow":true},{"allow":false,"type":"c","major":1,"minor":3,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"r"}]"#,
        ];
        for json in lists {
            let s = state(json);
            let p = assemble(&s);
            for (kind, typ) in [(Kind::Block, B), (Kind::Char, C)] {
                for (maj, min) in [(1, 3), (1, 5), (8, 0), (8, 1), (136, 2)] {
                    for acc in 1..=7u8 {
                        let want = s.allows(kind, maj, min, acc);
                        assert_eq!(
                            run(&p, typ, u32::from(acc), maj, min) == 1,
                            want,
                            "{json}: {kind:?} {maj}:{min} {acc}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn encoding_matches_struct_bpf_insn() {
        let e = encode(&[insn(LDX_MEM_W, 4, 1, 4, 0), insn(JMP_JNE_K, 2, 0, 3, 2)]);
        assert_eq!(e[0].to_le_bytes(), [0x61, 0x14, 4, 0, 0, 0, 0, 0]);
        assert_eq!(e[1].to_le_bytes(), [0x55, 0x02, 3, 0, 2, 0, 0, 0]);
    }
}

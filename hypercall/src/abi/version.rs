//! `xen_version` (`xen/include/public/version.h`).

use super::assert_layout;

/// `XENVER_*` commands.
pub mod cmd {
    pub const VERSION: u32 = 0;
    pub const EXTRAVERSION: u32 = 1;
    pub const COMPILE_INFO: u32 = 2;
    pub const CAPABILITIES: u32 = 3;
    pub const CHANGESET: u32 = 4;
    pub const PLATFORM_PARAMETERS: u32 = 5;
    pub const GET_FEATURES: u32 = 6;
    pub const PAGESIZE: u32 = 7;
    pub const GUEST_HANDLE: u32 = 8;
    pub const COMMANDLINE: u32 = 9;
}

/// `xen_extraversion_t`.
pub type Extraversion = [u8; 16];
/// `xen_capabilities_info_t`.
pub type Capabilities = [u8; 1024];
/// `xen_changeset_info_t`.
pub type Changeset = [u8; 64];

/// `struct xen_compile_info`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CompileInfo {
    pub compiler: [u8; 64],
    pub compile_by: [u8; 16],
    pub compile_domain: [u8; 32],
    pub compile_date: [u8; 32],
}
assert_layout!(
    CompileInfo,
    size = 144,
    compiler = 0,
    compile_by = 64,
    compile_domain = 80,
    compile_date = 112
);

/// `struct xen_platform_parameters`.
#[repr(C)]
pub struct PlatformParameters {
    pub virt_start: u64,
}
assert_layout!(PlatformParameters, size = 8, virt_start = 0);

/// `struct xen_feature_info`.
#[repr(C)]
pub struct FeatureInfo {
    pub submap_idx: u32,
    pub submap: u32,
}
assert_layout!(FeatureInfo, size = 8, submap_idx = 0, submap = 4);

/// `XENFEAT_*` bits of submap 0, with their names for reports. Bits 0-17
/// are Xen 4.17's; Xen 4.18 added 18 and 19 (VCPUOP_register_runstate_phys_area
/// and VCPUOP_register_vcpu_time_phys_area exist) and 4.19 added 20 (a
/// device-model detail), so Xen 4.20 reports them to PV guests.
pub const FEATURE_NAMES: [(u32, &str); 21] = [
    (0, "writable_page_tables"),
    (1, "writable_descriptor_tables"),
    (2, "auto_translated_physmap"),
    (3, "supervisor_mode_kernel"),
    (4, "pae_pgdir_above_4gb"),
    (5, "mmu_pt_update_preserve_ad"),
    (6, "highmem_assist"),
    (7, "gnttab_map_avail_bits"),
    (8, "hvm_callback_vector"),
    (9, "hvm_safe_pvclock"),
    (10, "hvm_pirqs"),
    (11, "dom0"),
    (12, "grant_map_identity"),
    (13, "memory_op_vnode_supported"),
    (14, "ARM_SMCCC_supported"),
    (15, "linux_rsdp_unrestricted"),
    (16, "not_direct_mapped"),
    (17, "direct_mapped"),
    (18, "runstate_phys_area"),
    (19, "vcpu_time_phys_area"),
    (20, "dm_msix_all_writes"),
];

#[cfg(test)]
mod tests {
    use super::FEATURE_NAMES;

    #[test]
    fn feature_bits_are_distinct_and_in_order() {
        assert!(FEATURE_NAMES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(FEATURE_NAMES.iter().all(|(bit, _)| *bit < 32));
    }
}

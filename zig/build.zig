const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});

    // Tests of the loader build a library that claims another ABI version.
    const options = b.addOptions();
    options.addOption(?u32, "abi_version_override", b.option(u32, "abi-version-override", "Claim this ABI version (loader tests only)"));

    const lib = b.addSharedLibrary(.{
        .name = "pageio",
        .root_source_file = b.path("src/root.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .strip = optimize != .Debug,
    });
    lib.root_module.addOptions("build_options", options);
    b.installArtifact(lib);

    const tests = b.addTest(.{
        .root_source_file = b.path("src/root.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    tests.root_module.addOptions("build_options", options);
    const run_tests = b.addRunArtifact(tests);
    b.step("test", "Run the Zig unit tests").dependOn(&run_tests.step);
}

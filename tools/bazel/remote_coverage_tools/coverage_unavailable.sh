#!/bin/sh
# Stand-in for Bazel's downloaded coverage tools (see BUILD beside this file).
echo "coverage is not available in this offline workspace (tools/bazel/remote_coverage_tools)" >&2
exit 1

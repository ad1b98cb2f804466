#!/bin/sh
# bad-input fixture: kernel_build must refuse every case of kernel_build.yml before merging.
echo 'bad-input fixture, not a kernel tree: kernel_build ran merge_config.sh' >&2
exit 1

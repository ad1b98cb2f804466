# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared code of the qemu_img and qemu_nbd modules.

- image sizes exactly as qemu-img parses them (1024-based K/M/G/T/P/E suffixes, a bare number is
  bytes) and QEMU images read with ``qemu-img info --output=json``;
- QEMU's image locks: which process holds an image a running VM (or qemu-nbd) has open;
- the nbd driver's sysfs: free devices, the qemu-nbd process serving a device, partitions, mounts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import codecs
import os
import re
from fractions import Fraction

from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import CommandError

SECTOR = 512
_SIZE = re.compile(r'^\s*([0-9]+(?:\.[0-9]+)?)\s*([bkmgtpe]?)\s*$', re.IGNORECASE)
_SIZE_SCALE = {'': 1, 'b': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4,
               'p': 1024 ** 5, 'e': 1024 ** 6}

# qemu-img/qemu-nbd print this when another process holds the image (QEMU's OFD byte locks).
LOCK_ERROR = re.compile(r'Failed to get (?:shared )?"\w+" lock')


class SizeError(ValueError):
    pass


def parse_image_size(value):
    """Bytes, as qemu-img reads a size: '10G' -> 10737418240, '1.5k' -> 1536, 4096 -> 4096.

    qemu-img rounds virtual sizes up to whole 512-byte sectors; a size that is not a multiple
    of 512 would never read back as requested, so it is refused.
    """
    if isinstance(value, bool):
        raise SizeError('%r is not a size' % (value,))
    if isinstance(value, int):
        number, suffix = value, ''
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise SizeError("'%s' is not a size: use bytes or a number with K, M, G, T, P or E "
                            "(1024-based, as qemu-img), e.g. 10G" % (value,))
        number, suffix = m.group(1), m.group(2).lower()
    scaled = Fraction(str(number)) * _SIZE_SCALE[suffix]
    if scaled.denominator != 1:
        raise SizeError("'%s' is not a whole number of bytes" % (value,))
    size = int(scaled)
    if size <= 0:
        raise SizeError("'%s' is not a positive size" % (value,))
    if size % SECTOR:
        raise SizeError("'%s' (%d bytes) is not a multiple of %d bytes: qemu-img would round it "
                        "up to %d" % (value, size, SECTOR, -(-size // SECTOR) * SECTOR))
    return size


def human_size(nbytes):
    """Shortest exact qemu-img spelling: 10737418240 -> '10G', 1536 -> '1536'."""
    for suffix in ('E', 'P', 'T', 'G', 'M', 'K'):
        scale = _SIZE_SCALE[suffix.lower()]
        if nbytes >= scale and nbytes % scale == 0:
            return '%d%s' % (nbytes // scale, suffix)
    return str(nbytes)


def resolve_backing(image_path, backing):
    """Absolute real path of a backing file name as QEMU resolves it (relative to the image)."""
    if backing is None:
        return None
    if '://' in backing or backing.startswith(('json:', 'nbd:')):
        return backing
    base = os.path.dirname(os.path.abspath(image_path))
    return os.path.realpath(os.path.join(base, backing))


def normalise_info(raw, path):
    """The fields of ``qemu-img info --output=json`` that modules compare and return."""
    specific = (raw.get('format-specific') or {}).get('data') or {}
    backing = raw.get('backing-filename')
    return {
        'path': os.path.abspath(path),
        'format': raw.get('format'),
        'virtual_size': raw.get('virtual-size'),
        'actual_size': raw.get('actual-size'),
        'backing_file': backing,
        'backing_file_resolved': resolve_backing(path, backing),
        'backing_format': raw.get('backing-filename-format'),
        'cluster_size': raw.get('cluster-size'),
        'dirty': raw.get('dirty-flag', False),
        'encrypted': raw.get('encrypted', False),
        'format_specific': specific,
    }


# Where a raw disk image shows that it is one: (what, offset, bytes).
DISK_SIGNATURES = (
    ('a partition table or boot sector', 510, b'\x55\xaa'),
    ('an ext2/3/4 file system', 1080, b'\x53\xef'),
    ('an XFS file system', 0, b'XFSB'),
    ('a btrfs file system', 0x10040, b'_BHRfS_M'),
    ('an LVM physical volume', 512, b'LABELONE'),
    ('a swap area', 4086, b'SWAPSPACE2'),
    ('an ISO 9660 file system', 0x8001, b'CD001'),
    ('a squashfs file system', 0, b'hsqs'),
    ('an F2FS file system', 1024, b'\x10\x20\xf5\xf2'),
)
DISK_PROBE = 0x10048


def raw_disk_evidence(path):
    """What shows that a file qemu-img reads as raw is a disk image, or (None, why not).

    qemu-img reads every file it does not recognise (a text file, an archive) as a raw image.
    A raw disk image is a whole number of 512-byte sectors and starts with a partition table, a
    file system or swap signature, or zeros (a new, sparse or never written image).
    """
    size = os.path.getsize(path)
    if size == 0:
        return None, 'it is empty'
    if size % SECTOR:
        return None, 'its size (%d bytes) is not a whole number of %d-byte sectors' % (size, SECTOR)
    with open(path, 'rb') as f:
        head = f.read(DISK_PROBE)
    for what, offset, magic in DISK_SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return what, None
    if not head.strip(b'\0'):
        return 'zeros at its start (a new or sparse image)', None
    start = head[:SECTOR]
    if b'\0' not in start:
        try:
            # final=False: a character cut at the end of the sector is still text.
            codecs.getincrementaldecoder('utf-8')().decode(start, final=False)
            return None, 'it starts with text'
        except UnicodeDecodeError:
            pass
    return None, 'it starts with no partition table, file system signature or zeros'


def diff_view(info):
    """What a diff shows of an image ({} when it does not exist)."""
    if not info:
        return {}
    return {'format': info['format'], 'virtual_size': info['virtual_size'],
            'backing_file': info['backing_file'], 'backing_format': info['backing_format']}


class ImageLocked(Exception):
    """Another process holds QEMU's lock on the image."""

    def __init__(self, path, holders, detail):
        self.path = path
        self.holders = holders
        self.detail = detail
        super(ImageLocked, self).__init__(lock_message(path, holders, detail))


def lock_message(path, holders, detail=''):
    who = '; '.join('pid %d: %s' % (h['pid'], h['cmdline']) for h in holders) or \
        'no process of this host has it open (another host on shared storage?)'
    msg = ("image '%s' is in use: QEMU's image lock is held by another process (%s). Stop the "
           "VM or qemu-nbd that uses it (or detach it) and retry" % (path, who))
    if detail:
        msg += '. qemu-img said: %s' % detail.strip().splitlines()[0]
    return msg


def _proc_cmdline(pid, proc='/proc'):
    try:
        with open(os.path.join(proc, str(pid), 'cmdline'), 'rb') as f:
            raw = f.read()
    except (IOError, OSError):
        return None
    return [a.decode('utf-8', 'replace') for a in raw.split(b'\0') if a]


def lock_holders(path, proc='/proc'):
    """Processes with ``path`` open (same device and inode), for lock messages.

    QEMU takes OFD locks, which /proc/locks lists with pid -1, so open files are matched instead.
    """
    try:
        st = os.stat(path)
    except OSError:
        return []
    holders = []
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        fd_dir = os.path.join(proc, entry, 'fd')
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                fst = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if (fst.st_dev, fst.st_ino) == (st.st_dev, st.st_ino):
                argv = _proc_cmdline(entry, proc) or []
                holders.append({'pid': int(entry), 'cmdline': ' '.join(argv)})
                break
    return holders


def raise_if_locked(error, path):
    """Turn a qemu-img/qemu-nbd lock failure into ImageLocked (other errors pass through)."""
    text = (error.result.stderr or '') + (error.result.stdout or '')
    if LOCK_ERROR.search(text):
        raise ImageLocked(path, lock_holders(path), text)
    raise error


# Image formats people name; qemu-img also lists protocol and filter drivers.
COMMON_FORMATS = ('qcow2', 'raw', 'vmdk', 'vdi', 'vhdx', 'vpc', 'qed', 'luks')


def supported_formats(help_text):
    """The formats of ``qemu-img --help``'s "Supported formats:" line (None when missing)."""
    m = re.search(r'^Supported formats:(.*)$', help_text or '', re.MULTILINE)
    return set(m.group(1).split()) if m else None


def unknown_formats(runner, named):
    """Messages for the ``(field, format)`` pairs this host's qemu-img does not know."""
    named = [(field, fmt) for field, fmt in named if fmt]
    if not named:
        return []
    known = supported_formats(runner.run(['qemu-img', '--help'], check_rc=False).stdout)
    if known is None:
        return []
    return ["%s: '%s' is not an image format qemu-img knows; use one of %s (qemu-img --help "
            "lists all)" % (field, fmt, ', '.join(f for f in COMMON_FORMATS if f in known))
            for field, fmt in named if fmt not in known]


def image_info(runner, path, force_share=True):
    """Normalised ``qemu-img info`` of an existing image (CommandError when unreadable).

    ``force_share`` (-U) reads an image that a running VM holds; without it a held image raises
    ImageLocked, which is how a module learns that a write would be refused.
    """
    argv = ['qemu-img', 'info', '--output=json']
    if force_share:
        argv.append('--force-share')
    argv.append(path)
    try:
        raw = runner.json(argv)
    except CommandError as e:
        raise_if_locked(e, path)
    return normalise_info(raw or {}, path)


def assert_not_locked(runner, path):
    """Raise ImageLocked when another process holds the image (read-only probe, no change)."""
    image_info(runner, path, force_share=False)


# ---------------------------------------------------------------------------------------------
# nbd

NBD_MISSING = (
    "this kernel has no nbd driver ({why}). qemu_nbd needs a kernel built with "
    "CONFIG_BLK_DEV_NBD (=m, then `modprobe nbd max_part=16`, or =y with nbd.max_part=16 on the "
    "kernel command line). Run it in a guest VM or on another host whose kernel has nbd; "
    "qemu_img works without it")

_NBD_NAME = re.compile(r'^nbd([0-9]+)$')

# qemu-nbd options that take a value (qemu-nbd --help, QEMU 7.2), to find the image argument.
_QEMU_NBD_VALUE_OPTS = {
    '-p', '--port', '-b', '--bind', '-k', '--socket', '-o', '--offset', '-P', '--partition',
    '-B', '--bitmap', '-x', '--export-name', '-D', '--description', '-e', '--shared', '-f',
    '--format', '-l', '--load-snapshot', '-c', '--connect', '-T', '--trace', '--object',
    '--cache', '--aio', '--discard', '--detect-zeroes', '--tls-creds', '--tls-authz',
    '--tls-hostname', '--pid-file', '--handshake-limit', '-A',
}


class NbdSysfs(object):
    """The nbd driver as sysfs and procfs show it (roots are parameters for unit tests)."""

    def __init__(self, sys_root='/sys', proc_root='/proc', dev_root='/dev'):
        self.sys = sys_root
        self.proc = proc_root
        self.dev = dev_root

    def loaded(self):
        return os.path.isdir(os.path.join(self.sys, 'module', 'nbd')) or \
            os.path.isdir(os.path.join(self.sys, 'block', 'nbd0'))

    def max_part(self):
        """The driver's max_part (0: the kernel never scans partitions), None if unknown."""
        try:
            with open(os.path.join(self.sys, 'module', 'nbd', 'parameters', 'max_part')) as f:
                return int(f.read().strip())
        except (IOError, OSError, ValueError):
            return None

    def devices(self):
        """'nbd0', 'nbd1', ... in numeric order."""
        try:
            names = os.listdir(os.path.join(self.sys, 'block'))
        except OSError:
            return []
        found = [n for n in names if _NBD_NAME.match(n)]
        return sorted(found, key=lambda n: int(_NBD_NAME.match(n).group(1)))

    def _read(self, name, *parts):
        try:
            with open(os.path.join(self.sys, 'block', name, *parts)) as f:
                return f.read().strip()
        except (IOError, OSError):
            return None

    def pid(self, name):
        """pid of the task serving the device (the kernel records qemu-nbd's thread), or None."""
        value = self._read(name, 'pid')
        return int(value) if value and value.isdigit() else None

    def size_sectors(self, name):
        value = self._read(name, 'size')
        return int(value) if value and value.isdigit() else 0

    def read_only(self, name):
        return self._read(name, 'ro') == '1'

    def is_free(self, name):
        return self.pid(name) is None and self.size_sectors(name) == 0

    def partitions(self, name):
        """Partition names of a device ('nbd0p1', ...) in numeric order."""
        try:
            entries = os.listdir(os.path.join(self.sys, 'block', name))
        except OSError:
            return []
        parts = [e for e in entries if re.match(r'^%sp[0-9]+$' % re.escape(name), e)]
        return sorted(parts, key=lambda p: int(p[len(name) + 1:]))

    def dev_numbers(self, name):
        """'major:minor' of the device and of its partitions."""
        values = [self._read(name, 'dev')] + [self._read(name, p, 'dev')
                                              for p in self.partitions(name)]
        return [v for v in values if v]

    def tgid(self, pid):
        """Thread group (process) id of a task id, or None when it is gone."""
        try:
            with open(os.path.join(self.proc, str(pid), 'status')) as f:
                for line in f:
                    if line.startswith('Tgid:'):
                        return int(line.split()[1])
        except (IOError, OSError, ValueError):
            return None
        return None

    def open_files(self, pid):
        """Absolute paths of the files a process has open (no devices, sockets or pipes)."""
        fd_dir = os.path.join(self.proc, str(pid), 'fd')
        try:
            fds = sorted(os.listdir(fd_dir), key=lambda n: int(n) if n.isdigit() else 0)
        except OSError:
            return []
        paths = []
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith('/') and not target.startswith('/dev/'):
                paths.append(target)
        return paths

    def served_image(self, pid):
        """Real path of the image the qemu-nbd process ``pid`` serves, and its argv."""
        argv = _proc_cmdline(pid, self.proc)
        image = qemu_nbd_image_arg(argv)
        if image is None:
            return None, argv
        if os.path.isabs(image):
            return os.path.realpath(image), argv
        # qemu-nbd --connect daemonizes into '/': a relative name is found among its open files,
        # whose links the kernel gives as absolute real paths.
        wanted = os.path.normpath(image)
        candidates = self.open_files(pid)
        for match in (lambda p: p.endswith('/' + wanted),
                      lambda p: os.path.basename(p) == os.path.basename(wanted)):
            for path in candidates:
                if match(path):
                    return path, argv
        try:
            cwd = os.readlink(os.path.join(self.proc, str(pid), 'cwd'))
        except OSError:
            cwd = '/'
        return os.path.realpath(os.path.join(cwd, image)), argv

    def attachment(self, name):
        """What serves device ``name``: {'device', 'pid', 'image', 'argv', 'read_only'} or None."""
        pid = self.pid(name)
        if pid is None:
            return None
        tgid = self.tgid(pid) or pid
        image, argv = self.served_image(tgid)
        return {
            'device': os.path.join(self.dev, name),
            'name': name,
            'pid': tgid,
            'image': image,
            'argv': argv,
            'read_only': self.read_only(name),
            'partitions': [os.path.join(self.dev, p) for p in self.partitions(name)],
        }

    def attachments(self):
        found = []
        for name in self.devices():
            att = self.attachment(name)
            if att:
                found.append(att)
        return found

    def mounts(self, name, mountinfo=None):
        """Mount points of the device or its partitions, deepest first (safe unmount order)."""
        numbers = set(self.dev_numbers(name))
        path = mountinfo or os.path.join(self.proc, 'self', 'mountinfo')
        points = []
        try:
            with open(path) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) > 4 and fields[2] in numbers:
                        points.append(_unescape_mount(fields[4]))
        except (IOError, OSError):
            return []
        return sorted(set(points), key=lambda p: (-p.count('/'), p))


def _unescape_mount(path):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), path)


def qemu_nbd_image_arg(argv):
    """The image argument of a qemu-nbd command line (its single positional argument)."""
    if not argv or not os.path.basename(argv[0]).startswith('qemu-nbd'):
        return None
    positional = []
    args = iter(argv[1:])
    for arg in args:
        if arg == '--':
            positional.extend(args)
            break
        if arg.startswith('--'):
            if '=' not in arg and arg in _QEMU_NBD_VALUE_OPTS:
                next(args, None)
            continue
        if arg.startswith('-') and len(arg) > 1:
            # Short options may be bundled (-rc /dev/nbd0) or carry their value (-f qcow2, -fqcow2).
            for i, letter in enumerate(arg[1:]):
                if '-' + letter in _QEMU_NBD_VALUE_OPTS:
                    if i == len(arg) - 2:
                        next(args, None)
                    break
            continue
        positional.append(arg)
    return positional[-1] if positional else None

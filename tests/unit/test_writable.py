"""Checks made before anything is written (plugins/module_utils/writable.py), on real files: an
immutable directory (chattr +i, which binds root too) stands for a read-only one."""

import os
import stat
import subprocess

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils.writable import directory_problem, \
    file_problem, replace_file


@pytest.fixture
def immutable(tmp_path):
    path = tmp_path / 'ro'
    path.mkdir()
    (path / 'kept.txt').write_text('kept\n')
    subprocess.run(['chattr', '+i', str(path)], check=True)
    yield path
    subprocess.run(['chattr', '-i', str(path)], check=True)


def test_a_directory_that_is_there_or_can_be_made_is_fine(tmp_path):
    assert directory_problem('run_dir', str(tmp_path)) is None
    assert directory_problem('run_dir', str(tmp_path / 'a' / 'b')) is None


def test_a_file_in_the_way_of_a_directory_is_named(tmp_path):
    (tmp_path / 'f').write_text('x')
    assert directory_problem('run_dir', str(tmp_path / 'f')) == (
        'run_dir %s is not a directory (a file is there): give a directory path' % (tmp_path / 'f'))
    assert directory_problem('run_dir', str(tmp_path / 'f' / 'sub')) == (
        'run_dir %s: %s is not a directory (a file is there): give a directory path'
        % (tmp_path / 'f' / 'sub', tmp_path / 'f'))


@pytest.mark.root
def test_a_read_only_directory_is_refused_even_for_root(immutable):
    assert directory_problem('path', str(immutable / 'new')) == (
        'path %s: %s is not writable (read-only, immutable or no permission): give a writable '
        'directory' % (immutable / 'new', immutable))
    assert directory_problem('path', str(immutable)).startswith('path %s: %s is not writable'
                                                                % (immutable, immutable))
    assert 'is not writable' in file_problem('dest', str(immutable / 'kept.txt'))
    assert 'is not writable' in file_problem('dest', str(immutable / 'new.json'))


def test_a_file_path_must_name_a_file_in_a_directory_that_exists(tmp_path):
    assert file_problem('dest', str(tmp_path / 'r.json')) is None
    assert file_problem('dest', str(tmp_path)) == (
        'dest %s is a directory: give the path of the file to write, e.g. %s'
        % (tmp_path, tmp_path / 'result.json'))
    assert file_problem('dest', str(tmp_path / 'no' / 'r.json')) == (
        'dest %s: the directory %s does not exist: create it or give another path'
        % (tmp_path / 'no' / 'r.json', tmp_path / 'no'))
    (tmp_path / 'f').write_text('x')
    assert file_problem('dest', str(tmp_path / 'f' / 'r.json')) == (
        'dest %s: %s is not a directory (a file is there): give another path'
        % (tmp_path / 'f' / 'r.json', tmp_path / 'f'))


def test_replace_file_keeps_the_mode_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'result.json'
    path.write_text('old\n')
    os.chmod(str(path), 0o640)
    replace_file(str(path), 'new\n')
    assert path.read_text() == 'new\n'
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o640
    assert os.listdir(str(tmp_path)) == ['result.json']


@pytest.mark.root
def test_replace_file_that_fails_leaves_the_file_and_no_temporary_file(tmp_path):
    path = tmp_path / 'result.json'
    path.write_text('old\n')
    subprocess.run(['chattr', '+i', str(path)], check=True)
    try:
        with pytest.raises(OSError):
            replace_file(str(path), 'new\n')
        assert path.read_text() == 'old\n'
        assert os.listdir(str(tmp_path)) == ['result.json']
    finally:
        subprocess.run(['chattr', '-i', str(path)], check=True)

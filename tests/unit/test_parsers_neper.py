"""neper stdout and --all-samples parsers on real recorded runs.

Expected figures were computed from the raw files with other tools, e.g. for samples.csv:
awk -F, 'NR>1{k=$1","$2; if(!(k in t)||$3>=t[k]){t[k]=$3;b[k]=$4}} END{for(k in b){n++;
  if(b[k]==0)z++; s+=b[k]; q+=b[k]*b[k]} print n, z, s, s*s/(n*q)}' samples.csv
"""

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError, neper, neper_samples

import recorded


def test_server_keys_and_throughput():
    kv = neper.parse(recorded.text('d_neper_F4000', 'server.txt'))
    assert kv['num_flows'] == 4000 and kv['num_threads'] == 2
    assert kv['throughput'] == 95.63 and kv['throughput_units'] == 'Mbit/s'
    assert neper.throughput_bps(kv) == 95627304.0  # local_throughput= line
    # free text is not a key, and is kept as a message
    assert not any(k.startswith('Test') for k in kv)
    summary = neper.summary(recorded.text('d_neper_F4000', 'server.txt'))
    assert summary['role'] == 'server'
    assert summary['messages'] == ['Test longer than expected (11), use -l <duration> to extend']


def test_client_has_only_the_remote_figure():
    kv = neper.parse(recorded.text('r_neper_F100', 'client.txt'))
    assert 'throughput' not in kv and kv['local_throughput'] == 0
    assert neper.throughput_bps(kv) == kv['remote_throughput'] == 95617982
    assert neper.summary(recorded.text('r_neper_F100', 'client.txt'))['role'] == 'client'


def test_values_stay_text_when_asked():
    kv = neper.parse('num_flows=10\nall_samples=\nx.y=1.5e3\n', numbers=False)
    assert kv == {'num_flows': '10', 'all_samples': '', 'x.y': '1.5e3'}
    assert neper.parse('x.y=1.5e3\n')['x.y'] == 1500.0


def test_throughput_units_scale_and_unknown_units_fail():
    assert neper.throughput_bps({'throughput': '2.5', 'throughput_units': 'Gbit/s'}) == 2.5e9
    with pytest.raises(ParseError, match='throughput_units'):
        neper.throughput_bps({'throughput': 1, 'throughput_units': 'furlongs'})


def test_not_neper_output():
    with pytest.raises(ParseError, match='not neper'):
        neper.summary(recorded.text('r_iperf2_P1000', 'client.txt'))


@pytest.mark.parametrize('run, flows, zero, total, jain', [
    ('d_neper_F4000', 4000, 3135, 241498576, 0.080671),
    ('r_neper_F100', 100, 23, 239199032, 0.644851),
])
def test_samples_per_flow(run, flows, zero, total, jain):
    summary = neper_samples.summary(recorded.text(run, 'samples.csv'))
    assert summary['flows'] == flows
    assert summary['zero_bytes'] == zero
    assert summary['total_bytes'] == total
    assert summary['jain_index'] == pytest.approx(jain, abs=1e-6)


def test_flow_ids_are_per_thread():
    text = 'tid,flow_id,time,bytes_read\n0,1,1.0,10\n1,1,1.0,0\n0,1,2.0,30\n1,1,2.0,5\n0,2,1.0,0\n'
    assert neper_samples.flow_bytes(text) == {(0, 1): 30, (1, 1): 5, (0, 2): 0}


def test_samples_header_checked():
    with pytest.raises(ParseError, match='bytes_read'):
        neper_samples.flow_bytes('tid,flow_id,time,transactions\n0,1,1.0,3\n')
    with pytest.raises(ParseError, match='line 2'):
        neper_samples.flow_bytes('tid,flow_id,time,bytes_read\n0,x,1.0,3\n')


def test_jain_index_bounds():
    assert neper_samples.jain_index([5, 5, 5, 5]) == 1.0
    assert neper_samples.jain_index([8, 0, 0, 0]) == 0.25
    assert neper_samples.jain_index([]) is None
    assert neper_samples.jain_index([0, 0]) is None


def test_concatenated_server_outputs_are_summed():
    # two tcp_stream servers' outputs one after the other, as flow_run's server.txt holds them
    small = recorded.text('r_neper_F100', 'server.txt')
    large = recorded.text('d_neper_F4000', 'server.txt')
    assert len(neper.documents(small + large)) == 2
    kv = neper.parse(small + large)
    assert kv['num_flows'] == 4100 and kv['num_threads'] == 4
    assert kv['local_throughput'] == 95617982 + 95627304
    assert kv['throughput'] == pytest.approx(95.62 + 95.63) and kv['throughput_units'] == 'Mbit/s'
    assert kv['num_samples'] == 1446 + 10314
    assert kv['time_start'] == 1307.524031448 and kv['time_end'] == 1517.680475610  # min, max
    assert kv['test_length'] == 10
    assert kv['port'] == 12867  # configuration: the first process's
    summary = neper.summary(small + large)
    assert summary['processes'] == 2 and summary['role'] == 'server'
    assert summary['throughput_bps'] == 95617982 + 95627304
    assert summary['messages'] == ['Test longer than expected (11), use -l <duration> to extend'] * 2
    text = neper.parse(small + large, numbers=False)
    assert text['num_flows'] == '4100' and text['host'] == ''


def test_concatenated_client_outputs_sum_the_remote_figure():
    client = recorded.text('r_neper_F100', 'client.txt')
    kv = neper.parse(client * 3)
    assert kv['num_flows'] == 300 and kv['local_throughput'] == 0
    assert neper.throughput_bps(kv) == 3 * 95617982
    assert neper.summary(client * 3)['role'] == 'client'


def test_samples_of_several_processes_merge_with_unique_flow_ids(tmp_path):
    parts = []
    for i, run in enumerate(('r_neper_F100', 'd_neper_F4000', 'r_neper_F100')):
        path = tmp_path / ('.samples.%d.csv' % i)
        path.write_text(recorded.text(run, 'samples.csv'))
        parts.append((str(path), [0, 100, 4100][i]))
    parts.append((str(tmp_path / 'never-written.csv'), 4200))
    out = tmp_path / 'samples.csv'
    rows = neper_samples.merge(parts, str(out))
    assert rows == 1446 * 2 + 10314
    merged = out.read_text()
    assert merged.count('tid,flow_id') == 1
    assert rows == len(merged.splitlines()) - 1
    summary = neper_samples.summary(merged)
    assert summary['flows'] == 100 + 4000 + 100
    assert summary['zero_bytes'] == 23 + 3135 + 23
    assert summary['total_bytes'] == 2 * 239199032 + 241498576

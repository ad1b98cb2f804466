"""What converge left in the guest, checked over SSH by testinfra."""

import json


def test_kernel_has_what_the_host_lacks(host):
    for module in ('sch_red', 'sch_netem', 'openvswitch', 'nbd'):
        assert host.file('/sys/module/%s' % module).is_directory, module
    # fq_codel is built into Debian's kernel (no /sys/module entry): use it instead.
    out = host.check_output('ip link add zdv0 type dummy && tc qdisc add dev zdv0 root fq_codel && '
                            'tc -j qdisc show dev zdv0; ip link del zdv0')
    assert json.loads(out)[0]['kind'] == 'fq_codel'


def test_ovs_runs_as_the_distribution_service(host):
    assert host.service('openvswitch-switch').is_running
    assert host.process.filter(comm='ovs-vswitchd')


def test_bridge_is_on_the_kernel_datapath(host):
    out = host.check_output('ovs-vsctl --format=json --columns=name,datapath_type list Bridge zd-kbr0')
    row = json.loads(out)['data'][0]
    assert row[0] == 'zd-kbr0' and row[1] in ('', 'system')
    dp = host.check_output('ovs-dpctl show')
    assert 'system@ovs-system' in dp
    for port in ('zd-kbr0', 'zdk-a0', 'zdk-b0'):
        assert ': %s' % port in dp, dp


def test_namespaces_talk_through_the_kernel_datapath(host):
    # minbase has no ping: a one-second iperf3 run between the two namespaces.
    host.check_output('ip netns exec zdk-b iperf3 -s -1 -D')
    # The daemon may not listen yet: retry the client a few times.
    run = host.run('for i in 1 2 3 4 5 6 7 8 9 10; do ip netns exec zdk-a iperf3 -c 10.198.0.2 -t 1 -J '
                   '> /tmp/zd-iperf.json && exit 0; sleep 1; done; exit 1')
    result = json.loads(host.file('/tmp/zd-iperf.json').content_string)
    assert run.rc == 0, result
    assert result['end']['sum_received']['bytes'] > 0
    flows = host.check_output('ovs-dpctl dump-flows')
    assert 'in_port' in flows


def test_data_disk_written_through_nbd(host):
    manifest = json.loads(host.file('/var/tmp/zd-images/video.qcow2.zerodrop.json').content_string)
    assert manifest['method'] == 'nbd'
    info = json.loads(host.check_output('qemu-img info --output=json /var/tmp/zd-images/video.qcow2'))
    assert info['format'] == 'qcow2' and info['virtual-size'] == 64 * 1024 * 1024
    host.check_output('qemu-img convert -O raw /var/tmp/zd-images/video.qcow2 /var/tmp/zd-images/check.raw')
    try:
        listing = host.check_output('debugfs -R "ls -l /video" /var/tmp/zd-images/check.raw')
        hostname = host.check_output('debugfs -R "cat /meta/hostname" /var/tmp/zd-images/check.raw')
    finally:
        host.run('rm -f /var/tmp/zd-images/check.raw')
    assert 'clip-000' in listing and 'clip-001' in listing
    assert hostname.strip() == host.check_output('hostname')
    # Nothing left attached.
    assert host.run('ls /sys/block/nbd*/pid').rc != 0

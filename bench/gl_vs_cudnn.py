#!/usr/bin/env python3
"""sparkle's OpenGL backend against PyTorch/cuDNN, strict FP32, taking turns.

For each batch size, every layer of a shapes file is timed by both sides in
each of several rounds, the order alternating between rounds (cuDNN first
in even rounds, sparkle first in odd ones), all in this one process and
device session:

- cuDNN: torch.nn.functional.conv2d with TF32 off (cudnn.allow_tf32 and
  matmul.allow_tf32 False, float32 matmul precision "highest") and
  cudnn.benchmark on. All data is generated on the GPU before any timing
  (and each shape's algorithm search runs then too). Per layer and round:
  untimed back-to-back runs worth --busy-ms of GPU time (the SM clock falls
  within moments of idling), then --repeat runs with a CUDA event pair
  each, recorded back to back, one synchronize at the end; the median.
  Its output is checked once per layer against a float64 convolution on the
  GPU, error relative to conv(|x|, |w|).
- sparkle: `sparkle-run tune --measure --json` (a subprocess per round and
  batch), which times what sparkle's plans now run (tuned winners) the same
  way: data resident on the device, busy warm-up, back-to-back GL timer
  queries, outputs checked against float64.

Reported per layer: the median over rounds of each round's median, the
spread of the round medians (min-max), the ratio cuDNN/sparkle (> 1:
sparkle faster) and the % of the FP32 peak, computed from the device (SM
count from torch, FP32 lanes per SM of its compute capability, max SM clock
from nvidia-smi; --peak-tflops overrides). Totals are sum(ms x count) per
round, then their median and spread. Full results go to --json.

usage: gl_vs_cudnn.py --sparkle-run PATH [--shapes FILE] [--batch 32 1]
                      [--rounds 3] [--repeat 20] [--busy-ms 30] [--json FILE]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

# FP32 FMA lanes per SM by compute capability (CUDA programming guide,
# "arithmetic instructions" throughput table).
FP32_LANES = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128,
              (9, 0): 128, (10, 0): 128, (12, 0): 128}


def read_shapes(path):
    layers = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            if not line:
                continue
            c, h, w, k, r, s, stride, pad, count = (int(v) for v in line[1:10])
            layers.append(dict(name=line[0], c=c, h=h, w=w, k=k, r=r, s=s, stride=stride, pad=pad,
                               count=count))
    return layers


def out_size(size, r, stride, pad):
    return (size + 2 * pad - r) // stride + 1


def flops(layer, batch):
    oh = out_size(layer['h'], layer['r'], layer['stride'], layer['pad'])
    ow = out_size(layer['w'], layer['s'], layer['stride'], layer['pad'])
    return 2.0 * batch * layer['k'] * layer['c'] * layer['r'] * layer['s'] * oh * ow


def peak_tflops(override):
    if override:
        return override, 'given with --peak-tflops'
    props = torch.cuda.get_device_properties(0)
    lanes = FP32_LANES.get((props.major, props.minor))
    try:
        mhz = float(subprocess.run(['nvidia-smi', '--query-gpu=clocks.max.sm',
                                    '--format=csv,noheader,nounits', '-i', '0'],
                                   capture_output=True, text=True, timeout=30).stdout.split()[0])
    except Exception:
        mhz = None
    if lanes is None or mhz is None:
        return None, 'unknown (pass --peak-tflops)'
    peak = props.multi_processor_count * lanes * 2 * mhz * 1e6 / 1e12
    return peak, '%d SMs x %d FP32 lanes x 2 x %.0f MHz' % (props.multi_processor_count, lanes, mhz)


class CudnnLayer:
    """One layer's data on the GPU, made before any timing."""

    def __init__(self, layer, batch):
        dev = torch.device('cuda')
        self.layer = layer
        self.x = torch.rand(batch, layer['c'], layer['h'], layer['w'], device=dev) * 2 - 1
        self.w = torch.rand(layer['k'], layer['c'], layer['r'], layer['s'], device=dev) * 2 - 1
        self.args = dict(stride=layer['stride'], padding=layer['pad'])
        F.conv2d(self.x, self.w, **self.args)  # cudnn.benchmark's algorithm search, untimed
        torch.cuda.synchronize()
        self.single_ms = self._one()
        self.max_rel_error = None

    def _one(self):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        F.conv2d(self.x, self.w, **self.args)
        e.record()
        e.synchronize()
        return s.elapsed_time(e)

    def check(self):
        y = F.conv2d(self.x, self.w, **self.args).double()
        ref = F.conv2d(self.x.double(), self.w.double(), **self.args)
        mag = F.conv2d(self.x.double().abs(), self.w.double().abs(), **self.args)
        self.max_rel_error = float(((y - ref).abs() / mag.clamp_min(1e-30)).max())
        del y, ref, mag
        torch.cuda.empty_cache()

    def time(self, repeat, busy_ms):
        # Warm-up until busy_ms of wall time under load, in chunks of about a
        # quarter of it, so the GPU never waits for the host in between.
        chunk = max(1, min(1000, int(0.25 * busy_ms / max(self.single_ms, 1e-3)) + 1))
        t0 = time.monotonic()
        while (time.monotonic() - t0) * 1e3 < busy_ms:
            for _ in range(chunk):
                F.conv2d(self.x, self.w, **self.args)
            torch.cuda.synchronize()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(repeat)]
        for s, e in events:
            s.record()
            F.conv2d(self.x, self.w, **self.args)
            e.record()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) for s, e in events]


def sparkle_round(exe, shapes, batch, repeat, busy_ms, log):
    cmd = [exe, 'tune', '--measure', '--json', '--shapes', shapes, '--batch', str(batch),
           '--device', 'opengl', '--repeat', str(repeat), '--rounds', '1', '--busy-ms',
           str(int(busy_ms))]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    log.write('$ %s\n%s\n' % (' '.join(cmd), proc.stderr))
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise RuntimeError('sparkle-run exited %d: %s' % (proc.returncode, proc.stderr[-2000:]))
    data = json.loads(proc.stdout)
    data['wall_s'] = time.monotonic() - t0
    return data


def spread(values):
    return (min(values), max(values)) if values else (None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sparkle-run', required=True)
    ap.add_argument('--shapes', default=os.path.join(os.path.dirname(__file__),
                                                     'resnet50_v1_5.shapes'))
    ap.add_argument('--batch', type=int, nargs='+', default=[32, 1])
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--repeat', type=int, default=20)
    ap.add_argument('--busy-ms', type=float, default=30)
    ap.add_argument('--peak-tflops', type=float)
    ap.add_argument('--json')
    ap.add_argument('--log', help='sparkle-run stderr of every round')
    args = ap.parse_args()

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision('highest')
    peak, peak_how = peak_tflops(args.peak_tflops)
    layers = read_shapes(args.shapes)
    log = open(args.log, 'w') if args.log else open(os.devnull, 'w')
    report = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                  cudnn=torch.backends.cudnn.version(), tf32=False, peak_tflops=peak,
                  peak_how=peak_how, rounds=args.rounds, repeat=args.repeat,
                  busy_ms=args.busy_ms, batches=[])
    print('# %s, torch %s, cuDNN %s, strict FP32 (TF32 off); FP32 peak %s TFLOPS (%s)' %
          (report['gpu'], report['torch'], report['cudnn'],
           '%.1f' % peak if peak else '?', peak_how), flush=True)
    tables = []
    for batch in args.batch:
        t0 = time.monotonic()
        data = [CudnnLayer(l, batch) for l in layers]
        for d in data:
            d.check()
        print('batch %d: data made and cuDNN algorithms chosen in %.1f s' %
              (batch, time.monotonic() - t0), flush=True)
        cud = {l['name']: [] for l in layers}     # per round medians
        spk = {l['name']: [] for l in layers}
        spk_info = {}
        totals = dict(cudnn=[], sparkle=[])
        for rnd in range(args.rounds):
            order = ['cudnn', 'sparkle'] if rnd % 2 == 0 else ['sparkle', 'cudnn']
            for side in order:
                if side == 'cudnn':
                    total = 0.0
                    for d in data:
                        ms = statistics.median(d.time(args.repeat, args.busy_ms))
                        cud[d.layer['name']].append(ms)
                        total += ms * d.layer['count']
                    totals['cudnn'].append(total)
                else:
                    s = sparkle_round(args.sparkle_run, args.shapes, batch, args.repeat,
                                      args.busy_ms, log)
                    total = 0.0
                    for row in s['layers']:
                        spk[row['name']].append(row['ms'])
                        spk_info.setdefault(row['name'], []).append(
                            dict(kernel=row['kernel'], tuned=row['tuned'], timer=row['timer'],
                                 correct=row['correct'], max_rel_error=row['max_rel_error'],
                                 samples_ms=row['samples_ms']))
                        total += row['ms'] * row['count']
                    totals['sparkle'].append(total)
            print('batch %d round %d (%s first): cuDNN %.3f ms, sparkle %.3f ms' %
                  (batch, rnd + 1, order[0], totals['cudnn'][-1], totals['sparkle'][-1]),
                  flush=True)
        rows = []
        for l in layers:
            name = l['name']
            c_med, s_med = statistics.median(cud[name]), statistics.median(spk[name])
            fl = flops(l, batch)
            info = spk_info.get(name, [{}])
            rows.append(dict(
                name=name, count=l['count'], flops=fl,
                cudnn_ms=c_med, cudnn_spread=spread(cud[name]), cudnn_rounds=cud[name],
                sparkle_ms=s_med, sparkle_spread=spread(spk[name]), sparkle_rounds=spk[name],
                ratio=c_med / s_med,
                cudnn_peak_pct=100 * fl / (c_med * 1e9) / peak if peak else None,
                sparkle_peak_pct=100 * fl / (s_med * 1e9) / peak if peak else None,
                kernel=info[-1].get('kernel'), tuned=info[-1].get('tuned'),
                sparkle_correct=all(i.get('correct', False) for i in info),
                sparkle_max_rel_error=max(i.get('max_rel_error') or 0 for i in info),
                cudnn_max_rel_error=next(d for d in data if d.layer['name'] == name).max_rel_error,
                sparkle_detail=info))
        c_tot, s_tot = statistics.median(totals['cudnn']), statistics.median(totals['sparkle'])
        total_flops = sum(flops(l, batch) * l['count'] for l in layers)
        b = dict(batch=batch, layers=rows, cudnn_totals_ms=totals['cudnn'],
                 sparkle_totals_ms=totals['sparkle'], cudnn_total_ms=c_tot,
                 sparkle_total_ms=s_tot, ratio=c_tot / s_tot,
                 cudnn_tflops=total_flops / (c_tot * 1e9), sparkle_tflops=total_flops / (s_tot * 1e9),
                 all_correct=all(r['sparkle_correct'] for r in rows))
        report['batches'].append(b)
        tables.append(b)
        del data
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)

    pk = lambda v: '%5.1f' % v if v is not None else '    ?'
    for b in tables:
        print('\nbatch %d: median over %d rounds (spread = min-max of the round medians); '
              'ratio = cuDNN ms / sparkle ms' % (b['batch'], args.rounds))
        print('%-10s %3s %9s %17s %6s %9s %17s %6s %6s  %s' %
              ('layer', 'n', 'cuDNN ms', 'spread', '%peak', 'sparkle', 'spread', '%peak', 'ratio',
               'sparkle kernel'))
        for r in b['layers']:
            print('%-10s %3d %9.4f %8.4f-%-8.4f %s %9.4f %8.4f-%-8.4f %s %6.2f  %s%s%s' %
                  (r['name'], r['count'], r['cudnn_ms'], r['cudnn_spread'][0],
                   r['cudnn_spread'][1], pk(r['cudnn_peak_pct']), r['sparkle_ms'],
                   r['sparkle_spread'][0], r['sparkle_spread'][1], pk(r['sparkle_peak_pct']),
                   r['ratio'], r['kernel'], '' if r['tuned'] else ' (untuned)',
                   '' if r['sparkle_correct'] else ' WRONG'))
        print('total: cuDNN %.3f ms (%.3f-%.3f, %.1f TFLOPS), sparkle %.3f ms (%.3f-%.3f, %.1f '
              'TFLOPS), ratio %.3f; outputs %s' %
              (b['cudnn_total_ms'], min(b['cudnn_totals_ms']), max(b['cudnn_totals_ms']),
               b['cudnn_tflops'], b['sparkle_total_ms'], min(b['sparkle_totals_ms']),
               max(b['sparkle_totals_ms']), b['sparkle_tflops'], b['ratio'],
               'checked, all within 1e-5' if b['all_correct'] else 'WRONG somewhere'))
        worst_c = max(r['cudnn_max_rel_error'] for r in b['layers'])
        print('cuDNN worst relative error against float64: %.2g' % worst_c)
    return 0 if all(b['all_correct'] for b in tables) else 1


if __name__ == '__main__':
    sys.exit(main())

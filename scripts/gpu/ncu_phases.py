#!/usr/bin/env python3
"""ncu_phases.py CUDASASS_CSV SASS_CSV FILE FIRST LAST CUTS... — where a kernel's warp-stall samples fall.

Input: the two source-page exports of one profiled kernel from a -lineinfo build,
  ncu -i R.ncu-rep --page source --csv --print-source cuda,sass > CUDASASS_CSV
  ncu -i R.ncu-rep --page source --csv --print-source sass      > SASS_CSV
Each SASS instruction is given the line of FILE (lines FIRST..LAST: the kernel's body) of the
nearest preceding instruction, in address order, that maps to FILE (instructions of inlined
helpers in other files take their caller's line that way). Phases are address ranges: CUTS
are lines of FILE, and each phase after the first starts at the lowest address that maps to
its cut line (e.g. the first line inside the V-tile loop and the barrier after it), so code
inlined from lambdas defined earlier counts where it runs. The compiler's scheduling moves a
few instructions across the boundaries, so the split is approximate. Prints the samples per
phase with their stall reasons, the most sampled lines and the most sampled instructions.
"""
import collections
import csv
import sys


def main():
    if len(sys.argv) < 6:
        print(__doc__)
        return 2
    cs, ss, fname = sys.argv[1], sys.argv[2], sys.argv[3]
    first, last = int(sys.argv[4]), int(sys.argv[5])
    cuts = [int(x) for x in sys.argv[6:]]

    addr = {}  # address -> (file, line)
    f = line = None
    for r in csv.reader(open(cs)):
        if len(r) == 2 and r[0] == 'File Path':
            f = r[1].split('/')[-1]
        elif len(r) >= 6 and r[0] not in ('', 'Line No'):
            line = int(r[0])
        elif len(r) >= 6 and r[2].startswith('0x'):
            addr[int(r[2], 16)] = (f, line)
    lab, label = None, {}
    for a in sorted(addr):
        fl, ln = addr[a]
        if fl == fname and first <= ln <= last:
            lab = ln
        label[a] = lab
    starts = [min(a for a in addr if addr[a] == (fname, c)) for c in cuts]

    def phase(a):
        return sum(a >= s for s in starts)

    rows = list(csv.reader(open(ss)))
    h = next(r for r in rows if r and r[0] == 'Address')
    si = [i for i, x in enumerate(h) if x.startswith('stall_') and 'Not Issued' not in x]
    isamp = h.index('Warp Stall Sampling (All Samples)')
    per_phase = collections.Counter()
    reasons = collections.defaultdict(collections.Counter)
    lines = collections.Counter()
    top = []
    for r in rows:
        if len(r) != len(h) or not r[0].startswith('0x'):
            continue
        a = int(r[0], 16)
        n = int(r[isamp] or 0)
        ln = label.get(a)
        p = phase(a) if ln is not None else -1
        per_phase[p] += n
        if ln is not None:
            lines[ln] += n
        for i in si:
            reasons[p][h[i][6:]] += int(r[i] or 0)
        top.append((n, ln, r[1].strip(), {h[i][6:]: int(r[i] or 0) for i in si}))
    tot = sum(per_phase.values())
    print(f'samples {tot}')
    for p in sorted(per_phase):
        c = reasons[p]
        t = sum(c.values()) or 1
        name = 'before line %d' % first if p < 0 else 'phase %d (lines %s..)' % (p, ([first] + cuts)[p])
        print(f'{name}: {100 * per_phase[p] / tot:.1f}% of samples; reasons ' +
              ' '.join(f'{k} {100 * v / t:.0f}%' for k, v in c.most_common(6)))
    print('most sampled lines:')
    for ln, v in lines.most_common(20):
        print(f'  line {ln}: {100 * v / tot:.2f}%')
    print('most sampled instructions:')
    top.sort(key=lambda x: -x[0])
    for n, ln, s, d in top[:20]:
        main_r = sorted(d.items(), key=lambda x: -x[1])[:2]
        print(f'  {100 * n / tot:5.2f}%  line {ln}  {s[:48]:48s} ' + ' '.join(f'{k}={v}' for k, v in main_r))
    return 0


if __name__ == '__main__':
    sys.exit(main())

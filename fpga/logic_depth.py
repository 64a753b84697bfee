#!/usr/bin/env python3
"""A quick static timing estimate of a Yosys `synth_ecp5` JSON netlist (the build's
``spikecore.json``): every deep register-to-register path at once, grouped by endpoint
register, with the project source lines along each worst path (nextpnr reports only the
single worst path, after a 10-minute place and route). Standard library only.

Calibrated against one routed dual-engine ULX3S path (16.6 ns routed): use
``--set ROUTE=0.6 --set LUT4_DELAY=0.24 --set CCU_IN_DELAY=0.24``; read the figures as a
ranking, not as timing.

    python3 fpga/logic_depth.py NETLIST.json [--threshold 10.0] [--top 40] [--module NAME]
                     [--path-lines 40] [--no-paths] [--hist-max 30]

Model: bit-level graph (net bit -> driver/loads), arrival times propagated in
topological order (Kahn, iterative), worst predecessor kept for path trace.
Arrival at a cell input pin = arrival(net) + route(sink pin, net fanout).
Endpoint arrival = arrival at pin + setup.  All numbers in ns, rough ECP5 -6.
"""

import argparse
import json
import math
import re
import sys
import time
from collections import defaultdict, Counter

# --------------------------------------------------------------------------
# Delay constants (ns).  Tweak here.
# --------------------------------------------------------------------------
ROUTE = 1.2               # general fabric routing hop into a LUT/CCU/FF/BRAM/... input
FANOUT_PENALTY = 0.3      # + FANOUT_PENALTY * log2(fanout of driving net) on routed hops
ROUTE_MUX_DATA = 0.0      # LUT -> PFUMX ALUT/BLUT, PFUMX -> L6MUX21 D0/D1 (same slice)
ROUTE_MUX_SEL = -1.0      # PFUMX C0 / L6MUX21 SD select comes from general routing;
                          # -1 = same as ROUTE (+fanout), 0.0 = purely intra-slice
ROUTE_CARRY = 0.0         # CCU2C COUT -> CIN (dedicated carry chain)

LUT4_DELAY = 0.45
MUX_DELAY = 0.3           # PFUMX / L6MUX21
CCU_IN_DELAY = 0.45       # CCU2C A/B/C/D -> S / COUT
CCU_CIN_COUT = 0.05       # per cell along the chain
CCU_CIN_S = 0.3           # CIN -> S0/S1
FF_CLK_TO_Q = 0.5
FF_SETUP = 0.1
BRAM_CLK_TO_DO = 5.8      # DP16KD clock -> DO (NOREG)
BRAM_CLK_TO_DO_OUTREG = 2.0  # DP16KD with REGMODE = OUTREG
BRAM_SETUP = 0.5          # DP16KD address/data/enable inputs
DPR_RAD_TO_DO = 0.6       # TRELLIS_DPR16X4 read address -> DO (combinational)
DPR_WCK_TO_DO = 1.0       # TRELLIS_DPR16X4 write clock -> DO (content change)
DPR_SETUP = 0.5           # TRELLIS_DPR16X4 WAD/DI/WRE
DSP_COMB = 4.0            # combinational MULT18X18D / ALU54B through delay
DSP_CLK_TO_OUT = 1.5      # registered DSP output clock -> out
DSP_SETUP = 0.5           # registered DSP input setup
OTHER_START = 0.0         # outputs of unknown / IO cells, undriven nets, top inputs
OTHER_SETUP = 0.0         # inputs of unknown / IO cells, top-level outputs

# Cell types treated like "unknown" (start / end points) but without a warning.
KNOWN_BLACKBOX = {
    'TRELLIS_IO', 'BB', 'IB', 'OB', 'OBZ', 'BBPU', 'BBPD', 'IBPU', 'IBPD',
    'OBZPU', 'OBZPD', 'OBCO', 'ILVDS', 'OLVDS', 'EHXPLLL', 'DCCA', 'DCSC',
    'CLKDIVF', 'ECLKSYNCB', 'ECLKBRIDGECS', 'GSR', 'SGSR', 'PUR', 'USRMCLK',
    'JTAGG', 'OSCG', 'DTR', 'EXTREFB', 'DCUA', 'VHI', 'VLO',
    'IDDRX1F', 'ODDRX1F', 'IDDRX2F', 'ODDRX2F', 'DELAYF', 'DELAYG',
    'TRELLIS_ECLKBUF', 'TRELLIS_GPLL', 'DQSBUFM', 'DDRDLLA', 'DLLDELD',
}
IGNORED_TYPES = {'$scopeinfo'}

# Clock pins: neither endpoints nor combinational inputs.
CLOCK_PINS = {
    'TRELLIS_FF': {'CLK'},
    'DP16KD': {'CLKA', 'CLKB'},
    'TRELLIS_DPR16X4': {'WCK'},
    'MULT18X18D': {'CLK0', 'CLK1', 'CLK2', 'CLK3'},
    'ALU54B': {'CLK0', 'CLK1', 'CLK2', 'CLK3'},
}

SUFFIX_RE = re.compile(r'_(TRELLIS_|LUT4|CCU2C|PFUMX|DP16KD|L6MUX21|MULT18X18D|ALU54B|DPR16X4|\$)')
TRAIL_RE = re.compile(r'(\[\d+\]|\.\d+|_\d+|_(?:DO|DI|AD)[AB]?\d+)$')
PORTNUM_RE = re.compile(r'\d+$')


def group_key(name):
    m = SUFFIX_RE.search(name)
    if m and m.start() > 0:
        name = name[:m.start()]
    while True:
        n2 = TRAIL_RE.sub('', name)
        if n2 == name or not n2:
            break
        name = n2
    name = re.sub(r'\$\d+', '$N', name)
    return name


def short_name(name, n=78):
    if name.startswith('design.'):
        name = name[7:]
    if len(name) <= n:
        return name
    return name[:n - 25] + '..' + name[-23:]


def short_src(src):
    """'<checkout>/rtl/x.py:12|/share/...' -> 'rtl/x.py:12' (project files only)."""
    if not src:
        return ''
    out = []
    for s in src.split('|'):
        if (s.startswith('/share/') or '/site-packages/' in s or s.startswith('<')
                or '/lib/python3' in s):
            continue
        i = s.find('/rtl/')
        if i >= 0:
            s = s[i + 1:]
        else:
            parts = s.split('/')
            s = '/'.join(parts[-2:])
        out.append(s)
    return '|'.join(out)


def pick_module(mods, name):
    if name:
        return name, mods[name]
    tops = [(k, v) for k, v in mods.items()
            if str(v.get('attributes', {}).get('top', '0')).lstrip('0') not in ('',)]
    if tops:
        return tops[0]
    k = max(mods, key=lambda k: len(mods[k].get('cells', {})))
    return k, mods[k]


def is_none(v):
    return v is None or str(v).strip().upper() == 'NONE'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('netlist')
    ap.add_argument('--threshold', type=float, default=10.0)
    ap.add_argument('--top', type=int, default=40, help='number of groups to print')
    ap.add_argument('--module', default=None, help='module name (default: top=1 / largest)')
    ap.add_argument('--path-lines', type=int, default=40, help='max lines per path (0=all)')
    ap.add_argument('--no-paths', action='store_true', help='only print group summary lines')
    ap.add_argument('--hist-max', type=int, default=0, help='clip histogram at this many ns')
    ap.add_argument('--set', action='append', default=[], metavar='CONST=VALUE',
                    help='override a delay constant, e.g. --set ROUTE=0.6 (repeatable)')
    ap.add_argument('--tim', default=None,
                    help='nextpnr log/.tim file: re-time its last "Critical path report for '
                         'clock" hop by hop with this model (calibration check)')
    args = ap.parse_args()
    for kv in args.set:
        k, v = kv.split('=', 1)
        if k not in globals() or not isinstance(globals()[k], float):
            sys.exit('unknown constant %s' % k)
        globals()[k] = float(v)
    if args.set:
        print('overrides: ' + ', '.join(args.set))

    t0 = time.time()
    with open(args.netlist) as f:
        data = json.load(f)
    t_load = time.time() - t0
    mname, mod = pick_module(data['modules'], args.module)
    cells = mod.get('cells', {})

    cell_names = []
    cell_types = []
    cell_srcs = []

    # net bit bookkeeping
    driver = {}            # bit -> (cell idx, port)
    fanout = Counter()     # bit -> number of input-pin loads
    base = {}              # bit -> base (start) arrival
    start_kind = {}        # bit -> description of start
    # edges: parallel lists
    e_src, e_dst, e_w, e_cell, e_in, e_out = [], [], [], [], [], []
    # endpoints: (bit, cell idx, port, kind, setup, route_kind)
    endpoints = []
    unknown = Counter()
    multidrv = 0

    def bits_of(conn):
        return [b for b in conn if isinstance(b, int)]

    # Pending arcs; route weight needs final fanout so stored with route class.
    # arc = (src_bit, dst_bit, logic_delay, route_class, cell, inport, outport)
    arcs = []

    for cname, c in cells.items():
        ctype = c.get('type', '')
        if ctype in IGNORED_TYPES:
            continue
        dirs = c.get('port_directions', {})
        conns = c.get('connections', {})
        if not dirs and not conns:
            continue
        ci = len(cell_names)
        cell_names.append(cname)
        cell_types.append(ctype)
        cell_srcs.append(short_src(c.get('attributes', {}).get('src', '')))
        params = c.get('parameters', {})
        clk = CLOCK_PINS.get(ctype, set())

        ins = {}   # port -> list of bits (non-const; index preserved with None for const)
        outs = {}
        for p, conn in conns.items():
            d = dirs.get(p)
            if d == 'input':
                ins[p] = [b if isinstance(b, int) else None for b in conn]
                if p not in clk:
                    for b in conn:
                        if isinstance(b, int):
                            fanout[b] += 1
            elif d == 'output':
                outs[p] = [b if isinstance(b, int) else None for b in conn]
                for i, b in enumerate(conn):
                    if isinstance(b, int):
                        if b in driver:
                            multidrv += 1
                        else:
                            driver[b] = (ci, p if len(conn) == 1 else '%s[%d]' % (p, i))

        def start(port_bits, t, kind):
            for bl in port_bits:
                for b in bl:
                    if b is not None:
                        base[b] = max(base.get(b, -1e9), t)
                        start_kind[b] = kind

        def endp(port, kind, setup):
            for i, b in enumerate(ins.get(port, [])):
                if b is not None:
                    pn = port if len(ins[port]) == 1 else '%s[%d]' % (port, i)
                    endpoints.append((b, ci, pn, kind, setup))

        def arc(inport, outport, delay, rclass):
            ib = ins.get(inport)
            ob = outs.get(outport)
            if not ib or not ob:
                return
            for i, s in enumerate(ib):
                if s is None:
                    continue
                for j, dbit in enumerate(ob):
                    if dbit is None:
                        continue
                    arcs.append((s, dbit, delay, rclass, ci,
                                 inport if len(ib) == 1 else '%s[%d]' % (inport, i),
                                 outport if len(ob) == 1 else '%s[%d]' % (outport, j)))

        if ctype == 'LUT4':
            for p in 'ABCD':
                arc(p, 'Z', LUT4_DELAY, 'R')
        elif ctype == 'CCU2C':
            for p in 'ABCD':
                arc(p + '0', 'S0', CCU_IN_DELAY, 'R')
                arc(p + '0', 'S1', CCU_IN_DELAY + CCU_CIN_COUT, 'R')
                arc(p + '0', 'COUT', CCU_IN_DELAY, 'R')
                arc(p + '1', 'S1', CCU_IN_DELAY, 'R')
                arc(p + '1', 'COUT', CCU_IN_DELAY, 'R')
            arc('CIN', 'S0', CCU_CIN_S, 'C')
            arc('CIN', 'S1', CCU_CIN_S, 'C')
            arc('CIN', 'COUT', CCU_CIN_COUT, 'C')
        elif ctype == 'PFUMX':
            arc('ALUT', 'Z', MUX_DELAY, 'M')
            arc('BLUT', 'Z', MUX_DELAY, 'M')
            arc('C0', 'Z', MUX_DELAY, 'S')
        elif ctype == 'L6MUX21':
            arc('D0', 'Z', MUX_DELAY, 'M')
            arc('D1', 'Z', MUX_DELAY, 'M')
            arc('SD', 'Z', MUX_DELAY, 'S')
        elif ctype == 'TRELLIS_FF':
            start(outs.values(), FF_CLK_TO_Q, 'FF')
            for p in ins:
                if p not in clk:
                    endp(p, 'FF.' + p, FF_SETUP)
        elif ctype == 'DP16KD':
            outreg = False
            for side in 'AB':
                if str(params.get('REGMODE_' + side, 'NOREG')).upper() == 'OUTREG':
                    outreg = True
            start(outs.values(), BRAM_CLK_TO_DO_OUTREG if outreg else BRAM_CLK_TO_DO, 'BRAM')
            for p in ins:
                if p not in clk:
                    endp(p, 'BRAM.' + PORTNUM_RE.sub('', p), BRAM_SETUP)
        elif ctype == 'TRELLIS_DPR16X4':
            start(outs.values(), DPR_WCK_TO_DO, 'LUTRAM')
            for p in ins:
                if p == 'RAD':
                    for o in outs:
                        arc('RAD', o, DPR_RAD_TO_DO, 'R')
                elif p not in clk:
                    endp(p, 'LUTRAM.' + p, DPR_SETUP)
        elif ctype == 'MULT18X18D':
            def reg(n):
                return not is_none(params.get(n))
            out_reg = reg('REG_OUTPUT_CLK') or reg('REG_PIPELINE_CLK')
            in_reg = {'A': reg('REG_INPUTA_CLK'), 'B': reg('REG_INPUTB_CLK'),
                      'C': reg('REG_INPUTC_CLK')}
            data_in = []
            for p in ins:
                if p in clk or p.startswith('CE') or p.startswith('RST'):
                    continue
                grp = p[0] if p[0] in 'ABC' and p[1:].isdigit() else None
                if grp and in_reg[grp]:
                    endp(p, 'DSP.' + grp, DSP_SETUP)
                elif grp == 'C':
                    continue  # C port does not feed P in MULT18X18D
                elif out_reg:
                    endp(p, 'DSP.' + PORTNUM_RE.sub('', p), DSP_SETUP)
                else:
                    data_in.append(p)
            if out_reg:
                start(outs.values(), DSP_CLK_TO_OUT, 'DSP')
            else:
                if any(in_reg.values()):
                    start(outs.values(), DSP_CLK_TO_OUT + DSP_COMB, 'DSP')
                for p in data_in:
                    for o in outs:
                        arc(p, o, DSP_COMB, 'R')
        elif ctype == 'ALU54B':
            regs = [k for k in params if k.startswith('REG_') and k.endswith('_CLK')]
            registered = any(not is_none(params[k]) for k in regs)
            dins = [p for p in ins if p not in clk and not p.startswith('CE')
                    and not p.startswith('RST')]
            if registered:
                start(outs.values(), DSP_CLK_TO_OUT, 'DSP')
                for p in dins:
                    endp(p, 'ALU.' + PORTNUM_RE.sub('', p), DSP_SETUP)
            else:
                for p in dins:
                    for o in outs:
                        arc(p, o, DSP_COMB, 'R')
        else:
            if ctype not in KNOWN_BLACKBOX:
                unknown[ctype] += 1
            start(outs.values(), OTHER_START, ctype)
            for p in ins:
                if p not in clk:
                    endp(p, ctype + '.' + PORTNUM_RE.sub('', p), OTHER_SETUP)

    # top-level ports
    for pname, p in mod.get('ports', {}).items():
        d = p.get('direction')
        for i, b in enumerate(p.get('bits', [])):
            if not isinstance(b, int):
                continue
            if d == 'input':
                if b not in driver:
                    base[b] = max(base.get(b, -1e9), OTHER_START)
                    start_kind[b] = 'input port ' + pname
            elif d == 'output':
                if b in driver:
                    fanout[b] += 1
                    endpoints.append((b, -1, '%s[%d]' % (pname, i), 'PORT.out', OTHER_SETUP))

    # --- route weights ---
    def route(bit, rclass):
        if rclass == 'R':
            fo = fanout.get(bit, 1)
            return ROUTE + (FANOUT_PENALTY * math.log2(fo) if fo > 1 else 0.0)
        if rclass == 'S':
            fo = fanout.get(bit, 1)
            sel = ROUTE if ROUTE_MUX_SEL < 0 else ROUTE_MUX_SEL
            return sel + (FANOUT_PENALTY * math.log2(fo) if fo > 1 and sel > 0 else 0.0)
        if rclass == 'M':
            return ROUTE_MUX_DATA
        if rclass == 'C':
            return ROUTE_CARRY
        return ROUTE

    # build graph
    indeg = defaultdict(int)
    outedges = defaultdict(list)
    for k, (s, dbit, delay, rclass, ci, ip, op) in enumerate(arcs):
        e_src.append(s)
        e_dst.append(dbit)
        e_w.append(delay + route(s, rclass))
        e_cell.append(ci)
        e_in.append(ip)
        e_out.append(op)
        indeg[dbit] += 1
        outedges[s].append(k)
    arcs = None

    nodes = set(e_src) | set(e_dst) | set(base) | set(b for b, *_ in endpoints)
    arr = {}
    pred = {}
    undriven = 0
    for b in nodes:
        if b in base:
            arr[b] = base[b]
        elif b not in driver:
            arr[b] = OTHER_START
            start_kind[b] = 'undriven'
            undriven += 1
        elif indeg.get(b, 0) == 0:
            # driven by a combinational cell whose inputs are all constant
            arr[b] = OTHER_START
            start_kind[b] = 'const-driven'
        else:
            arr[b] = -1e18

    remaining = {b: indeg.get(b, 0) for b in nodes}
    queue = [b for b in nodes if remaining[b] == 0]
    done = 0
    loop_breaks = []
    while True:
        while queue:
            b = queue.pop()
            done += 1
            ab = arr[b]
            for k in outedges.get(b, ()):
                d = e_dst[k]
                cand = ab + e_w[k]
                if cand > arr[d]:
                    arr[d] = cand
                    pred[d] = k
                remaining[d] -= 1
                if remaining[d] == 0:
                    queue.append(d)
        if done >= len(nodes):
            break
        # combinational loop(s): collect the unresolved set once, then break
        # by releasing the unresolved node with the highest partial arrival
        if not loop_breaks:
            unresolved = [b for b in nodes if remaining[b] > 0]
            loop_breaks.append(unresolved)
            cand_order = sorted(unresolved, key=lambda x: -arr[x])
            cand_pos = 0
        while remaining[cand_order[cand_pos]] <= 0:
            cand_pos += 1
        b = cand_order[cand_pos]
        if arr[b] < -1e17:
            arr[b] = 0.0
        remaining[b] = 0
        queue.append(b)
        loop_breaks.append(b)

    t_graph = time.time() - t0

    # --- netname index for readable signal names ---
    best_net = {}
    for nname, n in mod.get('netnames', {}).items():
        src = short_src(n.get('attributes', {}).get('src', ''))
        hidden = n.get('hide_name', 0)
        derived = bool(SUFFIX_RE.search(nname))
        score = (hidden, 0 if src else 1, 1 if derived else 0, len(nname))
        for i, b in enumerate(n.get('bits', [])):
            if isinstance(b, int):
                cur = best_net.get(b)
                if cur is None or score < cur[0]:
                    nm = nname if len(n['bits']) == 1 else '%s[%d]' % (nname, i)
                    best_net[b] = (score, nm, src)

    # signal name -> project src, for "anchor" lookups from Yosys-derived cell names
    sig_src = {}
    for nname, n in mod.get('netnames', {}).items():
        src = short_src(n.get('attributes', {}).get('src', ''))
        if src:
            sig_src[nname] = src

    def anchor(cname):
        """Yosys autoname: 'a.b.sig_LUT4_C_Z..' is named after a net 'a.b.sig' it touches."""
        m = SUFFIX_RE.search(cname)
        pre = cname[:m.start()] if m and m.start() > 0 else cname
        cands = [pre]
        x = pre
        while True:
            x2 = TRAIL_RE.sub('', x)
            if x2 == x or not x2:
                break
            x = x2
            cands.append(x)
        for c in cands:
            if c in sig_src:
                return c, sig_src[c]
        return None, ''

    def netdesc(b):
        x = best_net.get(b)
        if not x:
            return '', ''
        return x[1], x[2]

    # --- endpoint arrivals ---
    ep_arr = []
    for (b, ci, port, kind, setup) in endpoints:
        rc = 'R'
        a = arr.get(b, OTHER_START) + route(b, rc) + setup
        ep_arr.append(a)

    # histogram
    print('netlist: %s  module: %s' % (args.netlist, mname))
    print('cells: %d  net bits in graph: %d  arcs: %d  endpoints: %d  (load %.1fs, graph %.1fs)'
          % (len(cell_names), len(nodes), len(e_src), len(endpoints), t_load, t_graph - t_load))
    tc = Counter(cell_types)
    print('cell types: ' + ', '.join('%s=%d' % kv for kv in tc.most_common()))
    if unknown:
        print('WARNING: unknown cell types treated as start/end points: ' +
              ', '.join('%s(%d)' % kv for kv in unknown.most_common()))
    if multidrv:
        print('WARNING: %d net bits with multiple drivers (first driver used)' % multidrv)
    if undriven:
        print('note: %d undriven net bits used as start points at %.1f' % (undriven, OTHER_START))
    if loop_breaks:
        unresolved = loop_breaks[0]
        cellset = Counter()
        for b in unresolved:
            dr = driver.get(b)
            if dr:
                cellset[cell_names[dr[0]]] += 1
        print('WARNING: combinational loop(s): %d net bits unresolved, broken at %d points; '
              'cells involved (first 20):' % (len(unresolved), len(loop_breaks) - 1))
        for cn in list(cellset)[:20]:
            print('   ', short_name(cn, 110))

    print()
    print('Endpoint arrival histogram (ns, arrival+setup; bar length is log-scaled):')
    hist = Counter(int(math.floor(a)) for a in ep_arr if a > -1e17)
    if hist:
        hi = max(hist)
        if args.hist_max:
            hi = min(hi, args.hist_max)
        mx = max(hist.values())
        for i in range(0, hi + 1):
            n = hist.get(i, 0) if i < hi or not args.hist_max else sum(
                v for k, v in hist.items() if k >= hi)
            bar = '#' * (int(round(50.0 * math.log1p(n) / math.log1p(mx))) if n else 0)
            print('  %3d-%-3d %7d %s' % (i, i + 1, n, bar))
    print()

    # --- grouping ---
    groups = {}
    for idx, (b, ci, port, kind, setup) in enumerate(endpoints):
        a = ep_arr[idx]
        if a < args.threshold:
            continue
        cname = cell_names[ci] if ci >= 0 else port
        key = (group_key(cname) if ci >= 0 else 'top-level ports', kind)
        g = groups.get(key)
        if g is None:
            groups[key] = [1, a, idx]
        else:
            g[0] += 1
            if a > g[1]:
                g[1] = a
                g[2] = idx

    n_over = sum(g[0] for g in groups.values())
    print('%d endpoints >= %.2f ns in %d groups (showing top %d)'
          % (n_over, args.threshold, len(groups), min(args.top, len(groups))))
    worst = max(ep_arr) if ep_arr else 0
    print('worst endpoint estimate: %.2f ns' % worst)
    print()

    def trace(idx):
        b, ci, port, kind, setup = endpoints[idx]
        steps = []
        # endpoint line
        steps.append((ep_arr[idx], cell_names[ci] if ci >= 0 else '<top>',
                      cell_types[ci] if ci >= 0 else 'PORT', port, 'endpoint',
                      cell_srcs[ci] if ci >= 0 else '', b))
        seen = set()
        cur = b
        while True:
            if cur in seen:
                steps.append((arr[cur], '<combinational loop, trace cut>', 'LOOP', '', 'start',
                              '', cur))
                break
            seen.add(cur)
            k = pred.get(cur)
            if k is None:
                dr = driver.get(cur)
                if dr:
                    steps.append((arr[cur], cell_names[dr[0]], cell_types[dr[0]], dr[1],
                                  'start', cell_srcs[dr[0]], cur))
                else:
                    steps.append((arr[cur], '<%s>' % start_kind.get(cur, 'start'), '-', '',
                                  'start', '', cur))
                break
            c = e_cell[k]
            steps.append((arr[cur], cell_names[c], cell_types[c],
                           '%s->%s' % (e_in[k], e_out[k]), 'comb', cell_srcs[c], cur))
            cur = e_src[k]
        steps.reverse()
        return steps

    ranked = sorted(groups.items(), key=lambda kv: -kv[1][1])[:args.top]
    for rank, ((key, kind), (cnt, wa, idx)) in enumerate(ranked, 1):
        steps = trace(idx)
        srcs = []
        for st in steps:
            for s in (st[5], netdesc(st[6])[1], anchor(st[1])[1]):
                for part in s.split('|') if s else ():
                    if part and part not in srcs:
                        srcs.append(part)
        levels = sum(1 for s in steps if s[2] == 'LUT4')
        print('#%-3d %6.2f ns  %5d endpoints  %s  [%s]   (%d LUT levels, start %s)'
              % (rank, wa, cnt, key, kind, levels, steps[0][2]))
        print('      src: ' + (', '.join(srcs) if srcs else '-'))
        if args.no_paths:
            continue
        lines = steps
        if args.path_lines and len(lines) > args.path_lines:
            h = args.path_lines // 2
            lines = lines[:h] + [None] + lines[-h:]
        for st in lines:
            if st is None:
                print('        ...')
                continue
            a, cn, ct, pin, what, src, bit = st
            nn, nsrc = netdesc(bit)
            extra = []
            if src:
                extra.append(src)
            if nn and what != 'endpoint':
                extra.append('net ' + short_name(nn, 60) + ('' if not nsrc or nsrc == src
                                                            else ' @' + nsrc))
            if not src and not nsrc:
                an, asrc = anchor(cn)
                if asrc:
                    extra.append('~%s @%s' % (short_name(an, 40), asrc))
            print('      %7.2f  %-10s %-12s %-60s %s'
                  % (a, ct, pin[:12], short_name(cn, 60), ' | '.join(extra)))
        print()

    if args.tim:
        retime_tim(args.tim, cells, route)
    print('runtime: %.1f s (json load %.1f s)' % (time.time() - t0, t_load))


def retime_tim(path, cells, route):
    """Re-time nextpnr's (last) 'Critical path report for clock' hop by hop."""
    txt = open(path, errors='replace').read()
    i = txt.rfind('Critical path report for clock')
    if i < 0:
        print('--tim: no "Critical path report for clock" in %s' % path)
        return
    sec = txt[i:].split('\n')
    hop_re = re.compile(r'^Info:\s+(clk-to-q|routing|logic|setup|source)\s+([-\d.]+)\s+([-\d.]+)\s+'
                        r'(Source|Net)\s+(\S+)')
    sink_re = re.compile(r'^Info:\s+Sink\s+(\S+)')
    pinmap = {'F': 'Z', 'OFX': 'Z', 'M': 'DI', 'FCI': 'CIN', 'FCO': 'COUT',
              'F0': 'S0', 'F1': 'S1'}

    def split(cp):
        c, _, pn = cp.rpartition('.')
        return c, pinmap.get(pn, pn)

    print()
    print('Re-timing nextpnr critical path from %s:' % path)
    print('   %-9s %7s %7s | %7s %7s  %s' % ('hop', 'pnr', 'pnr_cum', 'model', 'mdl_cum', 'cell'))
    cum = 0.0
    last_sink = None
    pending_route = None
    for line in sec[1:]:
        if line.startswith('Info: Critical path report') or 'ns logic,' in line:
            break
        m = hop_re.match(line)
        if m:
            kind, d, tot, what, obj = m.groups()
            if kind == 'routing':
                pending_route = (float(d), float(tot))
                continue
            c, pn = split(obj)
            cell = cells.get(c)
            ctype = cell['type'] if cell else '?'
            if kind == 'clk-to-q':
                md = {'TRELLIS_FF': FF_CLK_TO_Q, 'DP16KD': BRAM_CLK_TO_DO,
                      'TRELLIS_DPR16X4': DPR_WCK_TO_DO}.get(ctype, DSP_CLK_TO_OUT)
            elif kind == 'logic':
                if ctype == 'LUT4':
                    md = LUT4_DELAY
                elif ctype in ('PFUMX', 'L6MUX21'):
                    md = MUX_DELAY
                elif ctype == 'CCU2C':
                    md = CCU_CIN_COUT if last_sink == 'CIN' else CCU_IN_DELAY
                elif ctype == 'TRELLIS_DPR16X4':
                    md = DPR_RAD_TO_DO
                else:
                    md = DSP_COMB
            elif kind == 'setup':
                md = {'TRELLIS_FF': FF_SETUP, 'DP16KD': BRAM_SETUP,
                      'TRELLIS_DPR16X4': DPR_SETUP}.get(ctype, DSP_SETUP)
            else:
                md = 0.0
            cum += md
            print('   %-9s %7.2f %7.2f | %7.2f %7.2f  %s %s.%s'
                  % (kind, float(d), float(tot), md, cum, ctype, short_name(c, 60), pn))
            continue
        m = sink_re.match(line)
        if m and pending_route is not None:
            c, pn = split(m.group(1))
            last_sink = pn
            cell = cells.get(c)
            md = 0.0
            fo_txt = ''
            if cell and pn in cell['connections']:
                b = cell['connections'][pn][0]
                if isinstance(b, int):
                    ctype = cell['type']
                    if pn == 'CIN':
                        rc = 'C'
                    elif ctype in ('PFUMX', 'L6MUX21'):
                        rc = 'S' if pn in ('C0', 'SD') else 'M'
                    else:
                        rc = 'R'
                    md = route(b, rc)
            cum += md
            print('   %-9s %7.2f %7.2f | %7.2f %7.2f    -> %s.%s'
                  % ('routing', pending_route[0], pending_route[1], md, cum,
                     short_name(c, 60), pn))
            pending_route = None


if __name__ == '__main__':
    main()

"""Ensembles averaged offline from per-network PublicTest probabilities under each degradation,
and the decision rule of results/robustness-2026-12-06/RULE-robust-run.md applied."""
import csv, json, sys, os
D = '/root/robust-grid'
CONDS = ['none','brightness=0.5','brightness=1.5','contrast=0.5','blur=0.75','blur=1.5','noise=10','noise=25','low-res=24','low-res=16','low-res=12','rotation=15','rotation=30','jpeg=30','jpeg=10']
SEEN = ['blur=0.75','blur=1.5','noise=10','noise=25','low-res=24','low-res=16','low-res=12']
UNSEEN = ['brightness=0.5','brightness=1.5','contrast=0.5','rotation=15','rotation=30','jpeg=30','jpeg=10']

def load(member, cond):
    rows = list(csv.DictReader(open(f'{D}/{member}--{cond}.csv')))
    labels = [int(r['label']) for r in rows]
    probs = [[float(r[k]) for k in r if k.startswith('p_')] for r in rows]
    return [int(r['row']) for r in rows], labels, probs

def metrics(labels, pred):
    n = len(labels); acc = sum(l == p for l, p in zip(labels, pred)) / n
    f1s = []
    for c in range(7):
        tp = sum(l == c and p == c for l, p in zip(labels, pred))
        fp = sum(l != c and p == c for l, p in zip(labels, pred))
        fn = sum(l == c and p != c for l, p in zip(labels, pred))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return acc, sum(f1s) / 7

def ensemble(members, cond):
    rows = labels = None; total = None
    for m in members:
        r, l, p = load(m, cond)
        if rows is None: rows, labels, total = r, l, [list(x) for x in p]
        else:
            assert r == rows and l == labels, (m, cond)
            total = [[a + b for a, b in zip(x, y)] for x, y in zip(total, p)]
    pred = [max(range(7), key=lambda c: row[c]) for row in total]
    return metrics(labels, pred)

def figures(members):
    f = {c: ensemble(members, c) for c in CONDS}
    mean = lambda cs: 100 * sum(f[c][0] for c in cs) / len(cs)
    return {'clean': 100 * f['none'][0], 'f1': f['none'][1], 'grid': mean(SEEN + UNSEEN),
            'seen': mean(SEEN), 'unseen': mean(UNSEEN), 'per': {c: 100 * f[c][0] for c in CONDS}}

def report(sets, path):
    """Prints each set's figures (clean and grid, then zoom) and writes them all to `path`."""
    out = {}
    for name, members in sets.items():
        if not all(os.path.exists(f'{D}/{m}--{c}.csv') for m in members for c in CONDS):
            print(name, 'incomplete'); continue
        out[name] = g = figures(members)
        print(f"{name:26s} clean {g['clean']:.2f} F1 {g['f1']:.3f} grid {g['grid']:.2f} trained-on {g['seen']:.2f} unseen {g['unseen']:.2f}")
    ZOOM = ['zoom=0.8', 'zoom=0.9', 'zoom=1.1', 'zoom=1.25']
    for name, members in sets.items():
        if not all(os.path.exists(f'{D}/{m}--{c}.csv') for m in members for c in ZOOM):
            continue
        z = {c: ensemble(members, c) for c in ZOOM}
        out.setdefault(name, {})['zoom'] = {c: 100 * z[c][0] for c in ZOOM}
        print(f"{name:26s} zoom " + ' '.join(f"{c} {100 * z[c][0]:.2f}" for c in ZOOM))
    json.dump(out, open(path, 'w'), indent=1)
    return out

if __name__ == '__main__':
    sets = {'fast (seed0)': ['seed0'], 'seed1': ['seed1'], 'B {seed0,seed1}': ['seed0', 'seed1']}
    if all(os.path.exists(f'{D}/robust--{c}.csv') for c in CONDS):
        sets.update({'robust': ['robust'], 'D {seed0,seed1,robust}': ['seed0', 'seed1', 'robust'],
                     'E {seed0,robust}': ['seed0', 'robust']})
    report(sets, f'{D}/merged.json')

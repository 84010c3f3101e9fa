"""Ensembles averaged offline from per-network PublicTest probabilities under each degradation
(the functions of ../robust-run/merge.py), and the decision rule of
results/robustness-2026-12-06/RULE-robust-80.md applied. Writes D/merged80.json, kept here as
merged.json."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'robust-run'))
from merge import D, report

if __name__ == '__main__':
    sets = {'fast (seed0)': ['seed0'], 'B {seed0,seed1}': ['seed0', 'seed1'], 'robust': ['robust'],
            'D {seed0,seed1,robust}': ['seed0', 'seed1', 'robust'],
            'robust-80': ['robust80'], 'D80 {seed0,seed1,robust80}': ['seed0', 'seed1', 'robust80'],
            'E80 {seed0,robust80}': ['seed0', 'robust80']}
    out = report(sets, f'{D}/merged80.json')
    # The rule of RULE-robust-80.md, applied.
    if 'robust-80' in out and 'clean' in out['robust-80']:
        r = out['robust-80']
        fast_ok = r['clean'] >= 69.02 and r['f1'] >= 0.665 and r['grid'] >= 52.12 and r['unseen'] >= 60.56
        print('rule 1: robust-80 replaces fast:', fast_ok)
        ok = {}
        for name in ['D80 {seed0,seed1,robust80}', 'E80 {seed0,robust80}']:
            g = out[name]
            base = g['clean'] >= 70.01 and g['f1'] >= 0.680 and g['unseen'] >= 63.27
            gain = (g['clean'] >= 70.30 and g['grid'] >= 57.23) or g['grid'] >= 58.03
            ok[name] = base and gain
            print(f'rule 2: {name} qualifies: {ok[name]}')
        d, e = 'D80 {seed0,seed1,robust80}', 'E80 {seed0,robust80}'
        if ok[d] and ok[e]:
            winner = e if out[e]['grid'] >= out[d]['grid'] - 0.3 else d
        else:
            winner = d if ok[d] else e if ok[e] else 'D stays'
        print('rule 2: builtin:accurate ->', winner)

"""Ensembles averaged offline from per-network PublicTest probabilities under each degradation
(the functions of ../robust-run/merge.py, reading after80.sh's folder), and the decision rule
of results/robustness-2026-12-06/RULE-seed-0-80-fresh.md applied. Writes merged.json there."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'robust-run'))
import merge

merge.D = '/work/runs/s0-80f-grid'

if __name__ == '__main__':
    sets = {'s0-80f': ['s0-80f'], 'robust-80 (f16)': ['robust80-f16'], 's0 (f16)': ['s0-f16'],
            'E80 {s0,robust-80} (f16)': ['s0-f16', 'robust80-f16'],
            'F {s0-80f,robust-80}': ['s0-80f', 'robust80-f16']}
    out = merge.report(sets, f'{merge.D}/merged.json')
    f = out.get('F {s0-80f,robust-80}')
    if f and 'clean' in f:
        checks = {'clean >= 71.42': f['clean'] >= 71.42, 'F1 >= 0.700': f['f1'] >= 0.700,
                  'grid >= 61.36': f['grid'] >= 61.36, 'unseen >= 64.45': f['unseen'] >= 64.45}
        for name, ok in checks.items():
            print(f'rule 2: {name}: {ok}')
        print('rule 2: builtin:accurate ->', 'F {s0-80f, robust-80}' if all(checks.values()) else 'E80 stays')

"""Ensembles averaged offline from per-network PublicTest probabilities under each degradation
(the functions of ../robust-run/merge.py, reading after80.sh's folder), and the decision rule
of results/robustness-2026-12-06/RULE-robust-80-fresh-seed-1.md applied. Writes merged.json there."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'robust-run'))
import merge

merge.D = os.environ.get('R80F_S1_GRID', '/work/runs/r80f-s1-grid')  # a dry run may point elsewhere


def fast_rule(r):
    """Rule 1: r80f-s1 replaces robust-80 as builtin:fast only if every check holds."""
    return {'clean >= 70.02': r['clean'] >= 70.02, 'F1 >= 0.690': r['f1'] >= 0.690,
            'grid >= 62.13': r['grid'] >= 62.13, 'unseen >= 63.78': r['unseen'] >= 63.78}


def accurate_checks(c):
    """Rule 2's bar for a candidate ensemble."""
    return {'clean >= 71.36': c['clean'] >= 71.36, 'F1 >= 0.700': c['f1'] >= 0.700,
            'grid >= 61.36': c['grid'] >= 61.36, 'unseen >= 64.45': c['unseen'] >= 64.45}


def extra_network_checks(c):
    """Rule 2's further bar for K, the three-network candidate."""
    return {'clean >= 71.56 or grid >= 62.66': c['clean'] >= 71.56 or c['grid'] >= 62.66}


def accurate_choice(candidates):
    """Among the qualifying candidates (name -> figures), the higher clean accuracy, unless the
    other's grid mean is at least 1.0 higher; None when none qualifies."""
    ok = {n: c for n, c in candidates.items() if all(accurate_checks(c).values())
          and (not n.startswith('K') or all(extra_network_checks(c).values()))}
    if not ok:
        return None
    best = max(ok, key=lambda n: ok[n]['clean'])
    for n, c in ok.items():
        if n != best and c['grid'] >= ok[best]['grid'] + 1.0:
            return n
    return best


if __name__ == '__main__':
    sets = {'r80f-s1': ['r80f-s1'], 'r80f': ['r80f'], 's0-80f': ['s0-80f'],
            'robust-80 (f16)': ['robust80-f16'], 's0 (f16)': ['s0-f16'],
            'E80 {s0,robust-80} (f16)': ['s0-f16', 'robust80-f16'],
            'J {r80f,r80f-s1}': ['r80f', 'r80f-s1'], 'K {s0-80f,r80f,r80f-s1}': ['s0-80f', 'r80f', 'r80f-s1']}
    out = merge.report(sets, f'{merge.D}/merged.json')
    if 'clean' in out.get('r80f-s1', {}):
        checks = fast_rule(out['r80f-s1'])
        for name, ok in checks.items():
            print(f'rule 1: {name}: {ok}')
        print('rule 1: builtin:fast ->', 'r80f-s1' if all(checks.values()) else 'robust-80 stays')
    names = ('J {r80f,r80f-s1}', 'K {s0-80f,r80f,r80f-s1}')
    candidates = {n: out[n] for n in names if 'clean' in out.get(n, {})}
    for n, c in candidates.items():
        checks = accurate_checks(c) | (extra_network_checks(c) if n.startswith('K') else {})
        for name, ok in checks.items():
            print(f'rule 2: {n}: {name}: {ok}')
    if len(candidates) == 2:
        choice = accurate_choice(candidates)
        print('rule 2: builtin:accurate ->', choice or 'E80 stays')

"""Ensembles averaged offline from per-network PublicTest probabilities under each degradation
(the functions of ../robust-run/merge.py, reading after80.sh's folder), and the decision rule
of results/robustness-2026-12-06/RULE-robust-80-fresh-seed-1.md applied. Writes merged.json there.
Rule 1's and rule 2's bars are r80f's, so they are taken from ../r80f/merge.py; only K's
further bar is new."""
import importlib.util, os

_spec = importlib.util.spec_from_file_location(
    'r80f_rule', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'r80f', 'merge.py'))
r80f_rule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(r80f_rule)
merge = r80f_rule.merge  # ../robust-run/merge.py's functions
merge.D = os.environ.get('R80F_S1_GRID', '/work/runs/r80f-s1-grid')  # a dry run may point elsewhere

fast_rule, accurate_checks = r80f_rule.fast_rule, r80f_rule.accurate_checks


def extra_network_checks(c):
    """Rule 2's further bar for K, the three-network candidate."""
    return {'clean >= 71.56 or grid >= 62.66': c['clean'] >= 71.56 or c['grid'] >= 62.66}


def accurate_choice(candidates):
    """r80f's choice (rule 2's bar, then the higher clean accuracy unless the other's grid mean
    is at least 1.0 higher) among the candidates, K only where it also clears its further bar."""
    return r80f_rule.accurate_choice({n: c for n, c in candidates.items()
                                      if not n.startswith('K') or all(extra_network_checks(c).values())})


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

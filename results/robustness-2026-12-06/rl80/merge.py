"""Ensembles averaged offline from per-network PublicTest probabilities under each degradation
(the functions of ../robust-run/merge.py, reading after80.sh's folder), and the decision rule
of results/robustness-2026-12-06/RULE-robust-light-80.md applied. Writes merged.json there.
Rule 1's and rule 2's bars are r80f's (../r80f/merge.py) and Q's further bar is K's
(../r80f-s1/merge.py), so they are taken from there."""
import importlib.util, os

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location('r80f_s1_rule', os.path.join(_here, '..', 'r80f-s1', 'merge.py'))
r80f_s1_rule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(r80f_s1_rule)
r80f_rule = r80f_s1_rule.r80f_rule
merge = r80f_rule.merge  # ../robust-run/merge.py's functions
merge.D = os.environ.get('RL80_GRID', '/work/runs/rl80-grid')  # a dry run may point elsewhere

fast_rule, accurate_checks = r80f_rule.fast_rule, r80f_rule.accurate_checks
extra_network_checks = r80f_s1_rule.extra_network_checks

P, Q = 'P {s0-80f,rl80}', 'Q {s0-80f,r80f,rl80}'


def accurate_choice(candidates):
    """r80f's choice (rule 2's bar, then the higher clean accuracy unless the other's grid mean
    is at least 1.0 higher) among the candidates, Q only where it also clears its further bar."""
    return r80f_rule.accurate_choice({n: c for n, c in candidates.items()
                                      if n != Q or all(extra_network_checks(c).values())})


if __name__ == '__main__':
    sets = {'rl80': ['rl80'], 's0-80f': ['s0-80f'], 'r80f': ['r80f'],
            'robust-80 (f16)': ['robust80-f16'], 's0 (f16)': ['s0-f16'],
            'E80 {s0,robust-80} (f16)': ['s0-f16', 'robust80-f16'],
            'G {s0-80f,r80f}': ['s0-80f', 'r80f'],
            P: ['s0-80f', 'rl80'], Q: ['s0-80f', 'r80f', 'rl80']}
    out = merge.report(sets, f'{merge.D}/merged.json')
    if 'clean' in out.get('rl80', {}):
        checks = fast_rule(out['rl80'])
        for name, ok in checks.items():
            print(f'rule 1: {name}: {ok}')
        print('rule 1: builtin:fast ->', 'rl80' if all(checks.values()) else 'robust-80 stays')
    candidates = {n: out[n] for n in (P, Q) if 'clean' in out.get(n, {})}
    for n, c in candidates.items():
        checks = accurate_checks(c) | (extra_network_checks(c) if n == Q else {})
        for name, ok in checks.items():
            print(f'rule 2: {n}: {name}: {ok}')
    if len(candidates) == 2:
        choice = accurate_choice(candidates)
        print('rule 2: builtin:accurate ->', choice or 'E80 stays')

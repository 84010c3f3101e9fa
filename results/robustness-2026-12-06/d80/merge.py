"""Ensembles averaged offline from per-network PublicTest probabilities under each degradation
(the functions of ../robust-run/merge.py, reading after80.sh's folder), and the decision rule
of results/robustness-2026-12-06/RULE-distilled-80.md applied. Writes merged.json there.
Rule 1's bars and rule 2's choice among qualifying candidates are r80f's (../r80f/merge.py);
rule 2's bars are new (Q = builtin:accurate since rl80)."""
import importlib.util, os

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location('r80f_rule', os.path.join(_here, '..', 'r80f', 'merge.py'))
r80f_rule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(r80f_rule)
merge = r80f_rule.merge  # ../robust-run/merge.py's functions
merge.D = os.environ.get('D80_GRID', '/work/runs/d80-grid')  # a dry run may point elsewhere

Q = 'Q {s0-80f,r80f,rl80}'
X, W = 'X {s0-80f,rl80,d80}', 'W {s0-80f,r80f,rl80,d80}'


def accurate_checks(c, name):
    """Rule 2's bar for a candidate ensemble (W, with a fourth network, needs more clean)."""
    clean_bar = 71.87 if name == W else 71.67
    return {f'clean >= {clean_bar}': c['clean'] >= clean_bar, 'F1 >= 0.707': c['f1'] >= 0.707,
            'grid >= 62.51': c['grid'] >= 62.51, 'unseen >= 65.23': c['unseen'] >= 65.23}


if __name__ == '__main__':
    sets = {'d80': ['d80'], 's0-80f': ['s0-80f'], 'r80f': ['r80f'], 'rl80': ['rl80'],
            'robust-80 (f16)': ['robust80-f16'], Q: ['s0-80f', 'r80f', 'rl80'],
            X: ['s0-80f', 'rl80', 'd80'], W: ['s0-80f', 'r80f', 'rl80', 'd80']}
    out = merge.report(sets, f'{merge.D}/merged.json')
    if 'clean' in out.get('d80', {}):
        checks = r80f_rule.fast_rule(out['d80'])
        for name, ok in checks.items():
            print(f'rule 1: {name}: {ok}')
        print('rule 1: builtin:fast ->', 'd80' if all(checks.values()) else 'robust-80 stays')
    candidates = {n: out[n] for n in (X, W) if 'clean' in out.get(n, {})}
    for n, c in candidates.items():
        for name, ok in accurate_checks(c, n).items():
            print(f'rule 2: {n}: {name}: {ok}')
    if len(candidates) == 2:
        print('rule 2: builtin:accurate ->',
              r80f_rule.accurate_choice(candidates, checks=accurate_checks) or 'Q stays')

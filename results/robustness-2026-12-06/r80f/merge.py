"""Ensembles averaged offline from per-network PublicTest probabilities under each degradation
(the functions of ../robust-run/merge.py, reading after80.sh's folder), and the decision rule
of results/robustness-2026-12-06/RULE-robust-80-fresh.md applied. Writes merged.json there."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'robust-run'))
import merge

merge.D = os.environ.get('R80F_GRID', '/work/runs/r80f-grid')  # a dry run may point elsewhere


def fast_rule(r):
    """Rule 1: r80f replaces robust-80 as builtin:fast only if every check holds."""
    return {'clean >= 70.02': r['clean'] >= 70.02, 'F1 >= 0.690': r['f1'] >= 0.690,
            'grid >= 62.13': r['grid'] >= 62.13, 'unseen >= 63.78': r['unseen'] >= 63.78}


def accurate_checks(c):
    """Rule 2's bar for a candidate ensemble."""
    return {'clean >= 71.36': c['clean'] >= 71.36, 'F1 >= 0.700': c['f1'] >= 0.700,
            'grid >= 61.36': c['grid'] >= 61.36, 'unseen >= 64.45': c['unseen'] >= 64.45}


def accurate_choice(candidates, further=None, checks=None):
    """Among the qualifying candidates (name -> figures), the higher clean accuracy, unless the
    other's grid mean is at least 1.0 higher; None when none qualifies. `further` maps a
    candidate's name to the further checks it must also pass (a later rule's extra network);
    `checks(figures, name)` replaces this rule's bar altogether (a later rule's own bar)."""
    further = further or {}
    checks = checks or (lambda c, n: accurate_checks(c) | further.get(n, _no_checks)(c))
    ok = {n: c for n, c in candidates.items() if all(checks(c, n).values())}
    if not ok:
        return None
    best = max(ok, key=lambda n: ok[n]['clean'])
    for n, c in ok.items():
        if n != best and c['grid'] >= ok[best]['grid'] + 1.0:
            return n
    return best


def _no_checks(c):
    return {}


def print_rules(out, fast_candidate, accurate_candidates, further=None):
    """Prints each check and the decision of rule 1 (`fast_candidate` for builtin:fast) and of
    rule 2 (`accurate_candidates` for builtin:accurate, with `further` as in accurate_choice),
    from merge.report's figures `out`; rule 2's decision only when every candidate has them."""
    further = further or {}
    if 'clean' in out.get(fast_candidate, {}):
        checks = fast_rule(out[fast_candidate])
        for name, ok in checks.items():
            print(f'rule 1: {name}: {ok}')
        print('rule 1: builtin:fast ->', fast_candidate if all(checks.values()) else 'robust-80 stays')
    candidates = {n: out[n] for n in accurate_candidates if 'clean' in out.get(n, {})}
    for n, c in candidates.items():
        for name, ok in (accurate_checks(c) | further.get(n, _no_checks)(c)).items():
            print(f'rule 2: {n}: {name}: {ok}')
    if len(candidates) == len(accurate_candidates):
        choice = accurate_choice(candidates, further)
        print('rule 2: builtin:accurate ->', choice or 'E80 stays')


if __name__ == '__main__':
    sets = {'r80f': ['r80f'], 's0-80f': ['s0-80f'], 'robust-80 (f16)': ['robust80-f16'],
            's0 (f16)': ['s0-f16'], 'E80 {s0,robust-80} (f16)': ['s0-f16', 'robust80-f16'],
            'G {s0-80f,r80f}': ['s0-80f', 'r80f'], 'H {s0,r80f}': ['s0-f16', 'r80f']}
    out = merge.report(sets, f'{merge.D}/merged.json')
    print_rules(out, 'r80f', ('G {s0-80f,r80f}', 'H {s0,r80f}'))

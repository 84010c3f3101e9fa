"""Ensembles averaged offline from per-network PublicTest probabilities under each degradation
(the functions of ../robust-run/merge.py, reading after80.sh's folder), and the decision rule
of results/robustness-2026-12-06/RULE-robust-80-fresh-seed-1.md applied. Writes merged.json there.
Rule 1's and rule 2's bars, the choice and the printing are r80f's, so they are taken from
../r80f/merge.py; only K's further bar is new."""
import importlib.util, os

_spec = importlib.util.spec_from_file_location(
    'r80f_rule', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'r80f', 'merge.py'))
r80f_rule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(r80f_rule)
merge = r80f_rule.merge  # ../robust-run/merge.py's functions
merge.D = os.environ.get('R80F_S1_GRID', '/work/runs/r80f-s1-grid')  # a dry run may point elsewhere


def extra_network_checks(c):
    """Rule 2's further bar for K, the three-network candidate."""
    return {'clean >= 71.56 or grid >= 62.66': c['clean'] >= 71.56 or c['grid'] >= 62.66}


if __name__ == '__main__':
    sets = {'r80f-s1': ['r80f-s1'], 'r80f': ['r80f'], 's0-80f': ['s0-80f'],
            'robust-80 (f16)': ['robust80-f16'], 's0 (f16)': ['s0-f16'],
            'E80 {s0,robust-80} (f16)': ['s0-f16', 'robust80-f16'],
            'J {r80f,r80f-s1}': ['r80f', 'r80f-s1'], 'K {s0-80f,r80f,r80f-s1}': ['s0-80f', 'r80f', 'r80f-s1']}
    out = merge.report(sets, f'{merge.D}/merged.json')
    K = 'K {s0-80f,r80f,r80f-s1}'
    r80f_rule.print_rules(out, 'r80f-s1', ('J {r80f,r80f-s1}', K), {K: extra_network_checks})

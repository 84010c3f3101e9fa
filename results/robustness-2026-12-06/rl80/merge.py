"""Ensembles averaged offline from per-network PublicTest probabilities under each degradation
(the functions of ../robust-run/merge.py, reading after80.sh's folder), and the decision rule
of results/robustness-2026-12-06/RULE-robust-light-80.md applied. Writes merged.json there.
Rule 1's and rule 2's bars, the choice and the printing are r80f's (../r80f/merge.py) and Q's
further bar is K's (../r80f-s1/merge.py), so they are taken from there."""
import importlib.util, os

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location('r80f_s1_rule', os.path.join(_here, '..', 'r80f-s1', 'merge.py'))
r80f_s1_rule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(r80f_s1_rule)
r80f_rule = r80f_s1_rule.r80f_rule
merge = r80f_rule.merge  # ../robust-run/merge.py's functions
merge.D = os.environ.get('RL80_GRID', '/work/runs/rl80-grid')  # a dry run may point elsewhere

P, Q = 'P {s0-80f,rl80}', 'Q {s0-80f,r80f,rl80}'


if __name__ == '__main__':
    sets = {'rl80': ['rl80'], 's0-80f': ['s0-80f'], 'r80f': ['r80f'],
            'robust-80 (f16)': ['robust80-f16'], 's0 (f16)': ['s0-f16'],
            'E80 {s0,robust-80} (f16)': ['s0-f16', 'robust80-f16'],
            'G {s0-80f,r80f}': ['s0-80f', 'r80f'],
            P: ['s0-80f', 'rl80'], Q: ['s0-80f', 'r80f', 'rl80']}
    out = merge.report(sets, f'{merge.D}/merged.json')
    r80f_rule.print_rules(out, 'rl80', (P, Q), {Q: r80f_s1_rule.extra_network_checks})

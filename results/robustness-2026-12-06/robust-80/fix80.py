# After the run: record in its directory what a1eef98's fer records for a lengthened run (the
# run itself was trained by an older binary that lengthened it without recording it).
import json
R = '/root/fer-runs/robust-80/run'
c = json.load(open(f'{R}/config.json'))
assert c['epochs'] == 40
c['epochs'] = 80
open(f'{R}/config.json', 'w').write(json.dumps(c, indent=2) + '\n')
s = json.load(open(f'{R}/state.json'))
assert s['epoch'] == 80 and 'extensions' not in s
s['extensions'] = [{'after_epoch': 40, 'from_epochs': 40, 'to_epochs': 80}]
open(f'{R}/state.json', 'w').write(json.dumps(s, indent=2) + '\n')
print('fixed')

#!/usr/bin/env python3
"""Generate the tiny .pth fixtures for tests/c/test_pth.c (run once; the outputs are committed).

Needs Debian's python3-torch for the genuine checkpoints; the hostile ones are written by hand
with pickle opcodes and zipfile, so they need nothing but the standard library.

  tiny_p2.pth      torch.save(state_dict) with the default pickle protocol 2
  tiny_p4.pth      the same with pickle_protocol=4 (FRAME, MEMOIZE, STACK_GLOBAL)
  legacy.pth       the same through the legacy (pre-1.6, non-zip) serialization
  evil_global.pth  a zip whose data.pkl calls os.system (GLOBAL)
  evil_stack.pth   a zip whose data.pkl calls builtins.eval (STACK_GLOBAL)
  nested.pth       {'epoch': 3, 'state_dict': {...}}: a full checkpoint, not a state_dict

Values (checked in C): every float entry of the module holds arange(n) * 0.5 - 1 in its shape.
"""
import collections
import os
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def evil(name, pickle_bytes):
    with zipfile.ZipFile(os.path.join(HERE, name), 'w', zipfile.ZIP_STORED) as z:
        z.writestr('archive/data.pkl', pickle_bytes)
        z.writestr('archive/version', '3\n')


def main():
    cmd = b'touch /tmp/trl_pth_pwned'
    # PROTO 2; GLOBAL 'os system'; BINUNICODE cmd; TUPLE1; REDUCE; STOP
    evil('evil_global.pth', b'\x80\x02cos\nsystem\nq\x00X' + len(cmd).to_bytes(4, 'little')
         + cmd + b'\x85q\x01Rq\x02.')
    # PROTO 4; SHORT_BINUNICODE 'builtins' 'eval'; STACK_GLOBAL; arg; TUPLE1; REDUCE; STOP
    code = b"__import__('os').system('touch /tmp/trl_pth_pwned')"
    evil('evil_stack.pth', b'\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94X'
         + len(code).to_bytes(4, 'little') + code + b'\x85\x94R\x94.')

    import torch
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                            torch.nn.Linear(4, 3))
    sd = m.state_dict()                          # an OrderedDict with '_metadata'
    with torch.no_grad():
        for k, v in sd.items():
            if v.is_floating_point():
                v.copy_((torch.arange(v.numel(), dtype=torch.float32) * 0.5 - 1).reshape(v.shape))
        sd['1.num_batches_tracked'].fill_(7)
    base = torch.arange(10, dtype=torch.float32)
    sd['extra.transposed'] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    sd['extra.full'] = base
    sd['extra.offset'] = base[3:7]              # same storage as extra.full, offset 3
    sd['extra.half'] = torch.tensor([1.5, -2.0, 65504.0], dtype=torch.float16)
    sd['extra.double'] = torch.tensor([[0.25, -1e-3]], dtype=torch.float64)
    sd['extra.bytes'] = torch.tensor([0, 7, 255], dtype=torch.uint8)
    sd['extra.mask'] = torch.tensor([True, False, True])
    sd['extra.int32'] = torch.tensor([-5, 1 << 30], dtype=torch.int32)
    sd['extra.param'] = torch.nn.Parameter(torch.ones(2))
    assert not sd['extra.transposed'].is_contiguous()
    torch.save(sd, os.path.join(HERE, 'tiny_p2.pth'))
    torch.save(sd, os.path.join(HERE, 'tiny_p4.pth'), pickle_protocol=4)
    small = collections.OrderedDict([('w', torch.ones(2))])
    torch.save(small, os.path.join(HERE, 'legacy.pth'), _use_new_zipfile_serialization=False)
    torch.save({'epoch': 3, 'state_dict': small}, os.path.join(HERE, 'nested.pth'))
    for name in sorted(os.listdir(HERE)):
        if name.endswith('.pth'):
            print(name, os.path.getsize(os.path.join(HERE, name)))


if __name__ == '__main__':
    sys.exit(main())

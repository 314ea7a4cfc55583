#!/usr/bin/env python3
"""The long convolution alone in PyTorch (CPU), for side-by-side timing with `longconv-bench conv`.

The same FFT product as the TNN operator of Benchmarks/torch_baseline.py (its `tno`), with a free kernel
instead of the RPE: rfft of input and kernel at 2L, product, irfft, first L outputs.
Usage: python3 Benchmarks/torch_conv.py THREADS   (prints one JSON object per shape)
"""
import sys, json, time, torch
torch.set_num_threads(int(sys.argv[1]))
def med(f, reps=7, warm=2):
    for _ in range(warm): f()
    ts=[]
    for _ in range(reps):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return sorted(ts)[len(ts)//2]
for b,d,l in [(1,1536,512),(1,1536,2048),(1,1536,8192),(8,768,512)]:
    x=torch.randn(b,l,d,requires_grad=True); k=torch.randn(l,d,requires_grad=True)
    def fwd():
        with torch.no_grad():
            return torch.fft.irfft(torch.fft.rfft(x,2*l,dim=1)*torch.fft.rfft(k,2*l,dim=0),2*l,dim=1)[:,:l]
    def fb():
        y=torch.fft.irfft(torch.fft.rfft(x,2*l,dim=1)*torch.fft.rfft(k,2*l,dim=0),2*l,dim=1)[:,:l]
        y.sum().backward()
    print(json.dumps(dict(impl="pytorch-"+torch.__version__, threads=torch.get_num_threads(), bench="conv", dim=d, batch=b, len=l, fwd_ms=med(fwd)*1e3, fwd_bwd_ms=med(fb)*1e3)), flush=True)

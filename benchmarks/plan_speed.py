"""Time one planning step: our batched CEM against TorchRL's ``CEMPlanner`` over the same world model, same run.

    python -m benchmarks.plan_speed                      # PlaNet sizes, 1000 candidates x 10 iterations x horizon 12
    python -m benchmarks.plan_speed --device cuda --repeats 20
    python -m benchmarks.plan_speed --pixels             # the conv encoder changes nothing here: planning is latent

Both plan from the same filtered state with the same untrained PlaNet-sized world model (RSSM 200/30, ReLU, reward
head 2 x 100): ours with :class:`dreamer_rl.planners.CEMPlanner` (one batched tensor program per plan), TorchRL's
``torchrl.modules.planners.CEMPlanner`` stepping :class:`dreamer_rl.model_env.WorldModelEnv` (TorchRL's rollout of
the model as an env, one TensorDict step at a time). Timings alternate between the two (``--repeats`` each, after
warm-up), on the same device and thread count; the figures are medians. Prints ``torchrl_ms_per_plan=``, then
``speedup_vs_torchrl=`` (TorchRL's median / ours) and ``ms_per_plan=`` (ours) last. ``--precision bf16`` plans
with ``planner.precision bf16`` and runs TorchRL's planning call under the same bfloat16 autocast. ``--compile
MODE`` compiles the world model's steps (:func:`dreamer_rl.compile.compile_steps`, what ``train.compile`` does),
which both planners step through: ours in its rollout, TorchRL's in every env step.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from tensordict import TensorDict

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.compile import COMPILE_MODES, compile_steps
from dreamer_rl.model_env import WorldModelEnv
from dreamer_rl.planners import CEMPlanner
from dreamer_rl.world_model import WorldModel


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--repeats", type=int, default=5, help="timed plans per planner")
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--horizon", type=int, default=12)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--action-dim", type=int, default=6, help="action width (cheetah_run: 6)")
    p.add_argument("--pixels", action="store_true", help="a pixel world model (the encoder is not used to plan)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: ours with planner.precision bf16, TorchRL's planning call under the same bfloat16 "
                        "autocast (like for like)")
    p.add_argument("--compile", choices=COMPILE_MODES, default="none",
                   help="torch.compile the world model's steps, which both planners use (none: eager)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    obs_shape = (3, 64, 64) if args.pixels else (17,)
    wm = WorldModel(obs_shape, args.action_dim, stoch=30, deter=200, hidden=200, units=100, act="relu",
                    reward_layers=2).to(device).eval()
    compile_steps(wm.rssm, args.compile)
    space = ActionSpace("continuous", (args.action_dim,))
    ours = CEMPlanner(wm.rssm, wm.reward, space, horizon=args.horizon, candidates=args.candidates,
                      iterations=args.iterations, top_k=args.top_k, precision=args.precision)
    env = WorldModelEnv(wm, space, device=device)
    from torchrl.modules.planners import CEMPlanner as TorchRLCEM

    theirs = TorchRLCEM(env, planning_horizon=args.horizon, optim_steps=args.iterations,
                        num_candidates=args.candidates, top_k=args.top_k)
    deter, stoch = torch.randn(1, 200, device=device), torch.randn(1, 30, device=device)
    start = TensorDict({"state": stoch, "belief": deter}, [1], device=device)

    def run_ours() -> None:
        ours(deter, stoch)

    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.precision == "bf16" \
        else contextlib.nullcontext

    def run_theirs() -> None:
        with autocast():
            theirs.planning(env.reset(start.clone()))

    with torch.no_grad():
        for fn in (run_ours, run_theirs):  # warm-up (allocator, kernels)
            fn()
        ours_ms, theirs_ms = [], []
        for _ in range(args.repeats):
            ours_ms.append(_time(run_ours, device))
            theirs_ms.append(_time(run_theirs, device))
    ms, torchrl_ms = statistics.median(ours_ms), statistics.median(theirs_ms)
    print(f"device={device} threads={torch.get_num_threads()} candidates={args.candidates} "
          f"iterations={args.iterations} horizon={args.horizon} action_dim={args.action_dim}")
    print(f"precision={args.precision}")
    print(f"compile={args.compile}")
    print(f"torchrl_ms_per_plan={torchrl_ms:.1f}")
    print(f"speedup_vs_torchrl={torchrl_ms / ms:.2f}")
    print(f"ms_per_plan={ms:.1f}")
    return {"ms_per_plan": ms, "torchrl_ms_per_plan": torchrl_ms, "speedup_vs_torchrl": torchrl_ms / ms}


if __name__ == "__main__":
    main()

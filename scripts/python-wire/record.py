"""Drives the official Python SDK (0.25.0) against a tinker-ts local server, for scripts/record-python-wire.ts.

Trains with several datums over the protobuf wire (forward_backward, forward, optim_step, forward_backward with
a loss_fn_config), then writes what the SDK used and decoded to the JSON file given as argv[1]: the datums
(as the SDK holds them), and per call the decoded result (loss_fn_output_type, metrics, per-datum outputs).
"""
import json
import sys

import tinker
from tinker import types


def datum(full, weights=None):
    inp, tgt = full[:-1], full[1:]
    w = weights if weights is not None else [1.0] * len(tgt)
    return types.Datum(model_input=types.ModelInput.from_ints(inp), loss_fn_inputs={"target_tokens": tgt, "weights": w})


def rl_datum(full, advantage):
    inp, tgt = full[:-1], full[1:]
    n = len(tgt)
    return types.Datum(
        model_input=types.ModelInput.from_ints(inp),
        loss_fn_inputs={"target_tokens": tgt, "logprobs": [-2.5] * n, "advantages": [advantage] * n},
    )


def tokens(seed, n):
    # Real-sized Qwen3 ids (the vocabulary has 151936), so the recording exercises the full int32 range it uses.
    return [(seed * 7919 + j * 104729) % 151936 for j in range(n)]


def td_json(td):
    return {"data": td.data, "dtype": td.dtype, "shape": td.shape}


def out_json(out):
    return {
        "loss_fn_output_type": out.loss_fn_output_type,
        "metrics": out.metrics,
        "loss_fn_outputs": [{k: td_json(v) for k, v in o.items()} for o in out.loss_fn_outputs],
    }


def main():
    out_path = sys.argv[1]
    service = tinker.ServiceClient()
    training = service.create_lora_training_client(base_model="Qwen/Qwen3-8B", rank=4)
    batch1 = [datum(tokens(1, 9)), datum(tokens(2, 5), [1.0, 0.5, 0.0, 2.0]), datum(tokens(3, 13), [0.25] * 12)]
    batch2 = [rl_datum(tokens(4, 7), 1.0), rl_datum(tokens(5, 3), -0.5)]
    calls = []
    fb1 = training.forward_backward(batch1, "cross_entropy").result()
    calls.append({"kind": "forward_backward", "batch": 1, "loss_fn": "cross_entropy", "loss_fn_config": None, "result": out_json(fb1)})
    fw = training.forward(batch1, "cross_entropy").result()
    calls.append({"kind": "forward", "batch": 1, "loss_fn": "cross_entropy", "loss_fn_config": None, "result": out_json(fw)})
    training.optim_step(types.AdamParams(learning_rate=0.02)).result()
    config = {"clip_low_threshold": 0.9, "clip_high_threshold": 1.1}
    fb2 = training.forward_backward(batch2, "ppo", loss_fn_config=config).result()
    calls.append({"kind": "forward_backward", "batch": 2, "loss_fn": "ppo", "loss_fn_config": config, "result": out_json(fb2)})
    training.optim_step(types.AdamParams(learning_rate=0.02)).result()
    fb3 = training.forward_backward(batch1, "cross_entropy").result()
    calls.append({"kind": "forward_backward", "batch": 1, "loss_fn": "cross_entropy", "loss_fn_config": None, "result": out_json(fb3)})
    batches = {
        "1": [{"tokens": d.model_input.to_ints(), "loss_fn_inputs": {k: td_json(v) for k, v in d.loss_fn_inputs.items()}} for d in batch1],
        "2": [{"tokens": d.model_input.to_ints(), "loss_fn_inputs": {k: td_json(v) for k, v in d.loss_fn_inputs.items()}} for d in batch2],
    }
    with open(out_path, "w") as f:
        json.dump({"sdk_version": tinker.__version__, "model_id": training.model_id, "batches": batches, "calls": calls}, f, indent=1)
    losses = [c["result"]["metrics"]["loss:sum"] for c in calls]
    print("python sdk losses:", losses)


if __name__ == "__main__":
    main()

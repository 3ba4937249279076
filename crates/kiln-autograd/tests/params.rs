//! One parameter store, several tapes: replicas read the same values (no copies) on their own threads and keep
//! their own gradients; borrowed inputs and state assignment.

use kiln_autograd::{Conv2dParams, Params, Tape};
use kiln_tensor::Tensor;

fn store() -> (Params, [kiln_autograd::ParamId; 3]) {
    let mut p = Params::new();
    let w = p.add("conv/kernel", &Tensor::from_fn(&[3, 3, 2, 4], |i| (i % 7) as f32 * 0.05 - 0.15).unwrap(), true);
    let b = p.add("conv/bias", &Tensor::from_fn(&[4], |i| i as f32 * 0.01).unwrap(), true);
    let d = p.add("dense/kernel", &Tensor::from_fn(&[64, 3], |i| (i % 5) as f32 * 0.02 - 0.04).unwrap(), true);
    (p, [w.unwrap(), b.unwrap(), d.unwrap()])
}

/// Forward and backward of a small conv → swish → dense → mean on `x` (`n` images of 4×4×2).
fn grads(tape: &mut Tape, p: &Params, [w, b, d]: [kiln_autograd::ParamId; 3], x: &[f32], n: usize) -> Vec<Vec<f32>> {
    let mut rec = tape.record(p);
    let xv = rec.input_ref(&[n, 4, 4, 2], x).unwrap();
    let (wv, bv, dv) = (rec.param(w).unwrap(), rec.param(b).unwrap(), rec.param(d).unwrap());
    let params = Conv2dParams { padding: kiln_kernels::Padding::Same, ..Conv2dParams::default() };
    let h = rec.conv2d(xv, wv, Some(bv), params).unwrap();
    let h = rec.swish(h).unwrap();
    let h = rec.flatten(h).unwrap();
    let y = rec.dense(h, dv, None).unwrap();
    let loss = rec.mean(y).unwrap();
    rec.backward(loss).unwrap();
    [w, b, d].iter().map(|&id| tape.param_grad(id).expect("every parameter has a gradient").to_vec()).collect()
}

#[test]
fn replicas_on_two_threads_read_one_store_and_keep_their_own_gradients() {
    let (p, ids) = store();
    let x: Vec<f32> = (0..6 * 32).map(|i| ((i * 13) % 17) as f32 * 0.1).collect();
    let (a, b) = x.split_at(3 * 32);
    // Each half alone, one after the other on this thread.
    let mut solo = Tape::new();
    let ga = grads(&mut solo, &p, ids, a, 3);
    let gb = grads(&mut solo, &p, ids, b, 3);
    // Both halves at once on two threads, each on its own tape, both reading `p`.
    let (mut t0, mut t1) = (Tape::new(), Tape::new());
    let (pa, pb) = std::thread::scope(|s| {
        let h0 = s.spawn(|| grads(&mut t0, &p, ids, a, 3));
        let h1 = s.spawn(|| grads(&mut t1, &p, ids, b, 3));
        (h0.join().unwrap(), h1.join().unwrap())
    });
    assert_eq!(pa, ga);
    assert_eq!(pb, gb);
    assert_ne!(ga, gb, "the halves differ, so the tapes' gradients are their own");
}

#[test]
fn assigned_state_is_listed_after_the_step_and_checked() {
    let mut p = Params::new();
    let mean = p.add("bn/moving_mean", &Tensor::zeros(&[2]).unwrap(), false).unwrap();
    let v0 = p.version(mean).unwrap();
    let mut tape = Tape::new();
    let mut rec = tape.record(&p);
    let x = rec.input(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let m = rec.param(mean).unwrap();
    assert!(rec.assign(mean, x).is_err(), "shape (3, 2) is not the parameter's (2,)");
    let row = rec.input(&[2], &[0.5, 0.25]).unwrap();
    let next = rec.bias_add(row, m).unwrap();
    rec.assign(mean, next).unwrap();
    let assigned: Vec<_> = tape.assignments().map(|(id, v)| (id, v.to_vec())).collect();
    assert_eq!(assigned, vec![(mean, vec![0.5, 0.25])]);
    assert_eq!(p.version(mean).unwrap(), v0, "assigning records; the store changes only when the engine writes");
    // A new step forgets the last one's assignments.
    let _ = tape.record(&p);
    assert_eq!(tape.assignments().count(), 0);
}

#[test]
fn borrowed_inputs_are_read_in_place_and_limited() {
    let p = Params::new();
    let mut tape = Tape::new();
    let data = [1.0f32, -2.0, 3.0, -4.0];
    let mut rec = tape.record(&p);
    let x = rec.input_ref(&[2, 2], &data).unwrap();
    assert_eq!(rec.value(x).unwrap().as_ptr(), data.as_ptr(), "no copy");
    let y = rec.relu(x).unwrap();
    assert_eq!(rec.value(y).unwrap(), &[1.0, 0.0, 3.0, 0.0]);
    assert!(rec.input_ref(&[3], &data).is_err(), "length must match the dims");
    for _ in 0..3 {
        rec.input_ref(&[4], &data).unwrap();
    }
    assert!(rec.input_ref(&[4], &data).is_err(), "at most four per step");
}

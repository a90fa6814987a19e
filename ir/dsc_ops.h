// The operators of our own domain (kDscDomain, "ai.dscompile"): gradients the ONNX set cannot
// express well, and the training ops (accumulation, clipping, optimizer updates).
//
// Every dump stays a valid ONNX graph because these ops live in their own domain. Shapes in the
// comments: X is the forward input, Y the forward output, dY/dX their gradients. Attributes copy
// the forward node's attributes unless stated. All float kernels exist for float32 first.
//
// Forward ops:
//   StopGradient(X) -> Y                        PyTorch's X.detach(), recovered from the dynamo exporter's
//                                               metadata (frontend/torch_detach.h): Y = X (Identity's
//                                               kernels, type inference and dtypes, a view of X), and
//                                               no gradient flows from Y to X (it has no gradient builder)
//   SampleDropout<batch_axis, sample_rows[, seed]>(data[, ratio][, training_mode]) -> output[, mask]
//                                               ONNX Dropout whose mask is keyed by (seed, step, node,
//                                               the sample's index in the step's global batch, the
//                                               element's index within the sample): indices
//                                               [s*rows, (s+1)*rows) of dim batch_axis belong to the
//                                               micro-batch's sample s; batch_axis -1: no batch axis
//                                               (the mask is keyed by element index, as Dropout's).
//                                               `node` is the first output's name, or the string
//                                               attribute `replays` (also on ONNX Dropout): a copy
//                                               that recomputes another node's output (rematerialize)
//                                               names the original's, so it draws the same mask
//   SampleRandom<distribution, low, high, mean, scale, batch_axis, sample_rows[, seed]>([P]) -> Y
//                                               ONNX's RandomUniform[Like] ("uniform": low + (high -
//                                               low) u), RandomNormal[Like] ("normal": mean + scale z)
//                                               and Bernoulli ("bernoulli", input P: 1 where u < P)
//                                               with SampleDropout's counters: Y's static shape and
//                                               dtype are the original's, and each element's draw is
//                                               keyed by (seed, step, node, sample, index within the
//                                               sample) on the same layout rules, so stochastic depth
//                                               keeps the DESIGN.md invariant (kernels/common/dropout_math.h)
//   Gelu<approximate = "none">(X) -> Y          ONNX's Gelu (opset 20) for graphs of older opsets,
//                                               made by the recognize pass (passes/recognize.cc) from
//                                               an exporter's decomposition; differentiated as Gelu
//   Attention<ONNX Attention's attrs>(Q, K, V[, attn_mask, ...]) -> Y
//                                               ONNX's Attention (opset 23) for graphs of older opsets,
//                                               made by the recognize pass (passes/recognize_attention.cc)
//                                               from an exporter's MatMul-Softmax-MatMul chain; runs the
//                                               standard op's kernels and is differentiated as it
//
// Pure gradient ops (SSA, one output each unless stated; an output's static type fixes its shape):
//   ReluGrad(dY, X) -> dX                       dX = dY * (X > 0)
//   LeakyReluGrad<alpha>(dY, X) -> dX           dX = dY * (X > 0 ? 1 : alpha)
//   SigmoidGrad(dY, Y) -> dX                    dX = dY * Y * (1 - Y)
//   TanhGrad(dY, Y) -> dX                       dX = dY * (1 - Y^2)
//   SoftmaxGrad<axis>(dY, Y) -> dX              dX = Y * (dY - sum(dY * Y, axis, keepdims))
//   LogSoftmaxGrad<axis>(dY, Y) -> dX           dX = dY - exp(Y) * sum(dY, axis, keepdims)
//   LayerNormalizationGrad<axis, epsilon>(dY, X, Scale) -> dX, dScale, dBias
//                                               mean/inv-std recomputed from X; dScale/dBias optional
//   BatchNormalizationGrad<epsilon>(dY, X, Scale) -> dX, dScale, dBias
//                                               training mode: batch mean/biased var over (N, spatial)
//   ConvGrad<auto_pad, dilations, group, kernel_shape, pads, strides>(dY, X, W) -> dX, dW, dB
//                                               any output may be omitted (empty name)
//   ConvTransposeGrad<ConvTranspose's attrs>(dY, X, W) -> dX, dW, dB
//                                               dX = Conv(dY, W), dW the adjoint conv's weight
//                                               gradient, dB = sum(dY); outputs as ConvGrad's
//   MaxPoolGrad<pool attrs>(dY, X) -> dX        gradient routed to the first max of each window
//   AveragePoolGrad<pool attrs>(dY) -> dX       count_include_pad honoured; dX shape from its type
//   ResizeGrad<Resize's attrs>(dY, roi, scales, sizes) -> dX   the adjoint of Resize: each dY element
//                                               added to the inputs its output read, with the same
//                                               weights; roi/scales/sizes are the forward's constants;
//                                               dX shape from its type
//   GridSampleGrad<GridSample's attrs>(dY, X, Grid) -> dX[, dGrid]   PyTorch's grid_sampler backward:
//                                               dX scatter-adds dY by the taps' weights, dGrid (zero for
//                                               nearest) differentiates the weights in the coordinates
//   GatherGrad<axis[, padding_idx]>(dY, indices) -> dData   scatter-add into zeros; dData shape
//                                               from its type; negative indices wrap as in Gather;
//                                               indices equal to padding_idx (nn.Embedding's,
//                                               default -1 = none) add nothing
//   GatherElementsGrad<axis>(dY, indices) -> dData   scatter-add of dY into zeros at the elements
//                                               GatherElements read; dData shape from its type
//   GatherNDGrad<batch_dims>(dY, indices) -> dData   scatter-add of dY's slices into zeros at the
//                                               slices GatherND read; dData shape from its type
//   SliceGrad(dY, starts, ends, axes, steps) -> dX   zeros with dY scattered into the slice
//   DropoutGrad(dY, mask, ratio) -> dX          dX = dY * mask / (1 - ratio)
//   SoftmaxCrossEntropyLossGrad<reduction, ignore_index>(dLoss, scores, labels[, weights]) -> dScores
//   NegativeLogLikelihoodLossGrad<reduction, ignore_index>(dLoss, input, target[, weight]) -> dInput
//   GeluGrad<approximate>(dY, X) -> dX          dX = dY * Gelu'(X) ("none": erf form, "tanh": tanh form)
//   MishGrad, HardSwishGrad, SoftplusGrad, SoftsignGrad (dY, X) -> dX, and HardSigmoidGrad<alpha, beta>,
//   EluGrad<alpha>, CeluGrad<alpha>, SeluGrad<alpha, gamma> (dY, X) -> dX:   dX = dY * f'(X), f' as torch's backward
//                                               (kernels/cpu/activation.cc)
//   RMSNormalizationGrad<axis, epsilon>(dY, X, Scale) -> dX[, dScale]
//                                               1/rms recomputed from X; dScale summed over broadcasts
//   AttentionGrad<Attention's attrs>(dY, Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen)
//       -> dQ, dK, dV[, dAttnMask]             probabilities recomputed; inputs omitted as in the
//                                               forward; dAttnMask (float mask) summed over broadcasts
//
// Fused ops (made by the fuse pass, passes/fuse.cc, which lists its rewrites):
//   FusedMatMul<transA = 0, transB = 0>(A, B) -> Y   numpy MatMul of op(A) and op(B), op = A (B) with
//                                               its last two axes swapped when transA (transB) is 1;
//                                               A and B of rank >= 2 and of Y's dtype; the GEMM reads
//                                               the operand transposed, no transposed copy is made
//
// Reductions and sums:
//   SumSquares(X1, ..., Xn) -> float[]          sum over all elements of all inputs of x^2 (fp32 acc.
//                                               in double for stability)
//   ClipScale<max_norm>(norm) -> float[]        DeepSpeed/torch clip_grad_norm_: min(1, max_norm /
//                                               (norm + 1e-6)); max_norm <= 0 means 1 (no clipping)
//
// In-place training ops (no outputs; they update their first inputs, which must be state inputs;
// the executor runs nodes in order, so order is meaning):
//   Accumulate(acc, X)                          acc += X
//   ZeroFill(T)                                 T = 0
//   Assign<shard = 0>(dst, src)                 dst = src (e.g. BatchNorm running statistics; the
//                                               half compute copy of a parameter from its master).
//                                               shard = 1: src holds this rank's chunk of
//                                               c = ceil(n / world) elements of the n-element dst;
//                                               dst[rank*c, min(n, (rank+1)*c)) = src (the padded
//                                               tail of the last chunk is ignored)
//   AdamStep<beta1, beta2, epsilon, weight_decay, adam_w_mode, bias_correction>
//       (param, grad, exp_avg, exp_avg_sq, lr, step, grad_scale[, beta1_override])
//       g = grad * grad_scale; if !adam_w_mode: g += weight_decay * param (L2)
//       exp_avg = b1*exp_avg + (1-b1)*g; exp_avg_sq = b2*exp_avg_sq + (1-b2)*g^2
//       bc1 = 1 - b1^step, bc2 = 1 - b2^step (1 when !bias_correction)
//       update = (exp_avg/bc1) / (sqrt(exp_avg_sq/bc2) + eps); if adam_w_mode: update += wd*param
//       param -= lr * update           (lr float[], step int64[] 1-based, grad_scale float[])
//   SGDStep<momentum, dampening, nesterov, weight_decay>(param, grad, momentum_buffer, lr, step, grad_scale)
//       torch.optim.SGD: d = grad*grad_scale + wd*param; buf = step == 1 ? d : momentum*buf + (1-dampening)*d
//       d = nesterov ? d + momentum*buf : buf (when momentum != 0); param -= lr * d
//       momentum_buffer may be omitted when momentum == 0
//   OptimStep<algorithm, the algorithm's attributes>(param, grad, state_1, ..., state_k, lr, step, grad_scale
//                                                    [, skip][, beta1_override][, param_copy][, mu_product])
//       The element-wise optimizers; ir/optim_algorithms.h lists each algorithm's attributes and
//       its k states (torch's state names), kernels/common/optimizer_math.h has each update in the
//       order torch (DeepSpeed for Lion) rounds it. g = grad * grad_scale, then per element:
//       "lion" (FusedLion): c = b1*m + (1-b1)*g; p = p*(1 - lr*wd) + (c > 0 ? -lr : lr);
//                exp_avg m = b2*m + (1-b2)*g      (float scalars, as DeepSpeed's CUDA kernel)
//       "adagrad": g += wd*p; sum = (step == 1 ? initial_accumulator_value : sum) + g^2;
//                p -= lr / (1 + (step-1)*lr_decay) * g / (sqrt(sum) + eps)
//       "rmsprop": g += wd*p; square_avg = alpha*sq + (1-alpha)*g^2; centered: grad_avg =
//                lerp(grad_avg, g, 1-alpha), avg = sqrt(sq - grad_avg^2) else sqrt(sq); avg += eps;
//                momentum: buf = momentum*buf + g/avg, p -= lr*buf; else p -= lr*g/avg
//       "adamax": g += wd*p; exp_avg = lerp(m, g, 1-b1); exp_inf = max(b2*u, |g| + eps);
//                p -= lr / (1 - b1^step) * m / u
//       "nadam":  decoupled_weight_decay ? p *= 1 - lr*wd : g += wd*p; m = lerp(m, g, 1-b1);
//                v = b2*v + (1-b2)*g^2; mu_t = b1*(1 - 0.5*0.96^(t*momentum_decay)), mu_product
//                = prod_{t<=step} mu_t (float32, as torch keeps it; recomputed from step, or with
//                beta1_override kept in the mu_product input: mu_product *= float(mu_t));
//                denom = sqrt(v / (1-b2^step)) + eps; p -= lr*(1-mu)/(1-mu_product) * g/denom;
//                p -= lr*mu_next/(1-mu_product*mu_next) * m/denom  (torch >= 2.0)
//       "radam":  weight decay as NAdam; m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g^2; rho_inf =
//                2/(1-b2) - 1, rho_t = rho_inf - 2*step*b2^step/(1-b2^step); rho_t > 5: p -=
//                m/bc1 * lr * sqrt(bc2)/(sqrt(v)+eps) * rect(rho_t), else p -= m/bc1 * lr
//       "adadelta": g += wd*p; square_avg = rho*sq + (1-rho)*g^2; delta = sqrt(acc_delta + eps) /
//                sqrt(sq + eps) * g; acc_delta = rho*acc + (1-rho)*delta^2; p -= lr*delta
//       beta1_override (float[], input 2+k+4; skip given as an empty name when absent): this step's
//       beta1 instead of the attribute (OneCycle's cycled momentum), for "lion", "adamax", "radam"
//       and "nadam". "nadam" with beta1_override also takes mu_product (float[], input 2+k+6; an
//       absent param_copy given as an empty name): torch's per-parameter state, the product of
//       every applied step's mu_t with that step's beta1, read and written in place (initially 1;
//       a skipped step leaves it). It is one scalar per parameter, whole on every rank: ZeRO does
//       not shard it (WholeStateInput). Without beta1_override "nadam" takes none and recomputes
//       the product from step and the beta1 attribute, as a constant beta1 allows.
//   Lamb (DeepSpeed's FusedLamb, kernels/common/lamb_math.h) is two ops, so that the per-tensor
//   norms of its trust ratio can be summed over ZeRO shards between them; attributes beta1, beta2,
//   epsilon, eps_inside_sqrt, weight_decay, and on LambApply also bias_correction, max_coeff,
//   min_coeff, slot:
//   LambMoments<...[, chunk_of]>(param, grad, exp_avg, exp_avg_sq, grad_scale[, skip][, beta1_override])
//       -> sums float[2]
//       g = grad * grad_scale; exp_avg = b1*m + (1-b1)*g; exp_avg_sq = b2*v + (1-b2)*g^2 (never
//       bias-corrected); update = m/denom + weight_decay*param, denom = sqrt(v + eps) with
//       eps_inside_sqrt else sqrt(v) + eps; sums = [sum param^2, sum update^2] over this op's
//       elements (param only read). chunk_of = n > 0: the tensors are this rank's chunk of an
//       n-element tensor and its padded tail does not count in the sums. Skipped: sums = 0.
//   LambApply<...>(param, sums, exp_avg, exp_avg_sq, lr, step[, skip][, beta1_override])
//       sums: float[2k], this tensor's [sum param^2, sum update^2] at 2*slot (all-reduced over
//       ranks when the tensor is sharded); coeff = sqrt(s0)/sqrt(s1) clamped to [min_coeff,
//       max_coeff], 1 when either is 0; step_size = lr*sqrt(1-b2^step)/(1-b1^step) (lr without
//       bias_correction); update recomputed as above; param -= step_size*coeff*update
//   beta1_override (float[]; LambMoments input 6, LambApply input 7, skip given as an empty name
//   when absent): this step's beta1 instead of the attribute (OneCycle's cycled momentum).
//   Muon (DeepSpeed's MuonWithAuxAdam for its use_muon parameters, kernels/common/muon_math.h) is
//   two ops, so that under ZeRO the momentum stays sharded while the orthogonalisation sees the
//   whole matrix (an AllGather of the update between them):
//   MuonMomentum<momentum>(param, grad, momentum_buffer, grad_scale[, skip]) -> update float
//       g = grad * grad_scale; momentum_buffer = lerp(momentum_buffer, g, 1 - momentum);
//       update = lerp(g, momentum_buffer, momentum) (Nesterov), shaped as momentum_buffer; param
//       is not read (it names the parameter the update belongs to). Skipped: nothing changes,
//       update = 0.
//   MuonApply<ns_method, ns_steps = 5, weight_decay[, chunk_of]>(param, update, lr[, skip])
//       update: the whole momentum update of the parameter (its full shape, float), viewed as a
//       matrix (rows = dims[0] and cols = the rest for 4 dims, else a batch of dims[-2] x dims[-1]
//       matrices); O = NewtonSchulz_{ns_method}(update) * sqrt(max(1, dims[-2] / dims[-1]));
//       param = param * (1 - lr * weight_decay) - lr * O. ns_method "standard" (quintic
//       iteration) or "gram" (on the Gram matrix, with a restart; standard for square
//       matrices). shard = 1: param is whole and only this rank's chunk of it is updated;
//       chunk_of = n > 0: param is this rank's chunk of an n-element tensor (its padding stays).
//   1-bit Adam (DeepSpeed's OnebitAdam, kernels/common/onebit_math.h) is two per-parameter ops and
//   the CompressedAllReduce collective between them (below). freeze_step = T, the last step that
//   is not compressed (max(2, ceil(the config's freeze_step))); steps after it are compressed:
//   OnebitMomentum<beta1, freeze_step>(param, grad, exp_avg, step, grad_scale[, skip])
//       step > T: exp_avg = b1*exp_avg + (1-b1)*grad*grad_scale (the rank's own gradient: the
//       engine's all-reduce is off then); otherwise nothing. param is not read.
//   OnebitAdamStep<beta1, beta2, epsilon, weight_decay, freeze_step>
//       (param, grad, exp_avg, exp_avg_sq, lr, step, grad_scale[, skip])
//       step 1: nothing (DeepSpeed's first call only initialises). 2 <= step <= T: g = grad *
//       grad_scale; exp_avg = b1*m + (1-b1)*g; exp_avg_sq = b2*v + (1-b2)*g^2. step > T:
//       exp_avg_sq frozen, exp_avg as OnebitMomentum and CompressedAllReduce left it. Then (no
//       bias correction) update = exp_avg/(sqrt(exp_avg_sq) + eps) + weight_decay*param;
//       param -= lr*update.
//   0/1 Adam (DeepSpeed's ZeroOneAdam, kernels/common/zoadam_math.h, which traces its schedule)
//   is, per parameter, ZoadamStep, then ZoadamPhase gating the CompressedAllReduce of the
//   parameter's momentum accumulator u, then ZoadamApply. Schedule attributes on the three:
//   last_var_step = U (the last step before the freeze, OptimizerConfig::zoadam_last_variance_step),
//   var_update_scaler, local_step_scaler, local_step_clipper (>= 1); world = the ranks. A step
//   s <= U is a "variance step" (ZoadamSchedule::VarianceStep: every step up to
//   var_update_scaler+1, then intervals doubling every var_update_scaler variance steps), else a
//   "compressed" one when world > 1; a frozen step s > U "syncs" when s % local_step_interval == 0
//   (the interval doubling every local_step_scaler frozen steps, up to local_step_clipper). The
//   engine's gradient AllReduce runs on variance steps only (AllReduce until_step = U and
//   var_update_scaler, below).
//   ZoadamStep<beta1, beta2, epsilon, weight_decay, schedule, world>
//       (param, grad, exp_avg, exp_avg_sq, accumulator, lrs, lr, step, grad_scale[, skip])
//       step 1: nothing (DeepSpeed's first call only initialises). g = grad*grad_scale. A
//       compressed step: u = g (the rank's own gradient) and nothing else. A variance step:
//       exp_avg_sq = b2*v + (1-b2)*g^2, exp_avg = b1*m + (1-b1)*g. Frozen: exp_avg = b1*m +
//       (1-b1)*g, lrs += lr (lrs: float64[1], summed in double as DeepSpeed's Python float is).
//       Then (not on compressed steps) d = -lr*(exp_avg/(sqrt(exp_avg_sq) + eps) +
//       weight_decay*param) (no bias correction), param += d; frozen: u += d, and on a sync step
//       param -= u, u *= sqrt(exp_avg_sq) + eps.
//   ZoadamPhase<schedule>(worker_error, server_error, step[, skip]) -> compress_skip bool[]
//       compress_skip = skip or not ZoadamSchedule::CompressedStep(s) (an unfrozen step >= 2 that
//       is no variance step, or a frozen sync step). Not skipped and s = U+1 (the first frozen
//       step): both errors are zeroed first, as DeepSpeed restarts them at the freeze. It is the
//       skip of CompressedAllReduce<world, freeze_step = 2>(worker_error, server_error, step,
//       compress_skip, accumulator).
//   ZoadamApply<beta1, epsilon, weight_decay, schedule, world>
//       (param, accumulator, exp_avg, exp_avg_sq, lrs, lr, step[, skip])
//       A compressed step (u: the average of the ranks' gradients): exp_avg = b1*m + (1-b1)*u, then
//       param += d as ZoadamStep's; u = 0. A frozen sync step (u: the average of the ranks'
//       accumulators): exp_avg = -(u / float(lrs)); param += u / (sqrt(exp_avg_sq) + eps); u = 0;
//       lrs = 0. Otherwise nothing.
//   u (P::momentum_accumulator) and lrs (P::lrs) are states of kind compression_error with the
//   errors: each rank's own, never checkpointed, as DeepSpeed's load_state_dict pops them.
//   1-bit Lamb (DeepSpeed's OnebitLamb, kernels/common/onebit_lamb_math.h) is three per-parameter
//   ops around one CompressedAllReduce of every momentum (one flat buffer, as DeepSpeed fuses
//   them). T = freeze_step as for 1-bit Adam. lamb_state (float64[3], kind optimizer) holds
//   DeepSpeed's per-tensor Python floats: [lamb_coeff_freeze, last_factor, scaling_coeff], where
//   last_factor 0 stands for DeepSpeed's initial 1.0 and scaling_coeff 0 for "not computed yet".
//   OnebitLambSnapshot<freeze_step>(exp_avg, lamb_state, step[, skip]) -> (exp_avg_last, momentum_scale)
//       step > T: exp_avg_last = exp_avg (the last step's momentum, as exp_avg is before this
//       step), momentum_scale float[1] = ||exp_avg||/sqrt(numel) when scaling_coeff is unset;
//       otherwise (and when skipped) both zero. Changes nothing.
//   OnebitLambMomentum<beta1, freeze_step, slot>(param, grad, exp_avg, lamb_state, momentum_scales,
//       step, grad_scale[, skip]): step > T: when scaling_coeff is unset it becomes
//       mean(momentum_scales) / momentum_scales[slot] (double; momentum_scales float[k], every
//       parameter's snapshot scale in parameter order); exp_avg = (b1*exp_avg +
//       (1-b1)*grad*grad_scale) * scaling_coeff. Otherwise nothing. param is not read.
//   OnebitLambStep<beta1, beta2, epsilon, weight_decay, max_coeff, min_coeff, coeff_beta,
//       factor_max, factor_min, factor_threshold, freeze_step, fresh_step>(param, grad, exp_avg,
//       exp_avg_sq, exp_avg_sq_fresh, lamb_state, exp_avg_last, lr, step, grad_scale[, skip])
//       step 1: nothing. 2 <= step <= T (Lamb without bias correction): g = grad*grad_scale;
//       exp_avg = b1*m + (1-b1)*g; exp_avg_sq = b2*v + (1-b2)*g^2; at step == fresh_step
//       exp_avg_sq_fresh = exp_avg_sq; update = m/(sqrt(v) + eps) + weight_decay*param; coeff =
//       ||param||/||update|| clamped to [min_coeff, max_coeff], 1 when either norm is 0; when
//       coeff != 1, lamb_coeff_freeze = coeff_beta*lamb_coeff_freeze + (1-coeff_beta)*coeff;
//       param += -lr*coeff*update. step > T: exp_avg /= scaling_coeff (after the compressed
//       all-reduce); r = (exp_avg - b1*exp_avg_last)/(1-b1); exp_avg_sq_fresh = b2*f + (1-b2)*r^2;
//       exp_avg_sq frozen; prelim = m/(sqrt(v) + eps), update = prelim + weight_decay*param;
//       factor = max(denom/(sqrt(exp_avg_sq_fresh) + eps)); with weight decay factor =
//       factor*u + (1-u), u = min(1, ||prelim||/||update||); factor clamped to [factor_min,
//       factor_max], then to last_factor*(1 -/+ factor_threshold); last_factor = factor;
//       param += -lr*lamb_coeff_freeze*factor*update.
//   All of them take an optional input skip (bool[]; AdamStep input 8, SGDStep input 6,
//   OptimStep input 2+k+3, LambMoments input 5, LambApply input 6, MuonMomentum input 4,
//   MuonApply input 3, OnebitMomentum input 5, OnebitAdamStep input 7, ZoadamStep input 9,
//   ZoadamPhase input 3, ZoadamApply input 7, OnebitLambSnapshot input 3,
//   OnebitLambMomentum input 7, OnebitLambStep input 10: the last one but for
//   OptimStep's and Lamb's beta1_override, with
//   beta1_override/momentum_buffer given as empty names when absent): when true the op changes
//   nothing (an fp16 overflow or bf16 inf/NaN step; DeepSpeed skips optimizer.step()).
//   The updates that read a gradient as input 1 (AdamStep, SGDStep, OptimStep, LambMoments,
//   MuonMomentum) read it in float32, float16 or bfloat16 alike, each element widened exactly to
//   float as Cast to float32 widens it (so the fuse pass lets them read a half gradient uncast).
//   AdamStep, SGDStep, OptimStep and LambApply take an optional last input param_copy (AdamStep
//   input 9, SGDStep input 7, OptimStep input 2+k+5, LambApply input 8; the optional inputs
//   before it given as empty names when absent) and an attribute copy_shard (int, default 0):
//   the half compute copy of a float32 master `param` (not with shard = 1), a float16/bfloat16
//   state. After the update, and also on a skipped step, param_copy holds param rounded to its
//   dtype as Cast rounds it, written as Assign<shard = copy_shard>(param_copy, Cast(param))
//   writes it (copy_shard = 1: param is this rank's chunk of c = ceil(n / world) elements of the
//   n-element param_copy). The fuse pass makes it from that Assign, so the master refresh is
//   written in the update's pass over param instead of two more passes.
//   All of them take an optional attribute shard (int, default 0). shard = 1 (ZeRO stages 1-2): `param`
//   is the whole parameter (n elements) and grad/state tensors hold this rank's chunk of
//   c = ceil(n / world) elements; the op updates param[rank*c, min(n, (rank+1)*c)) from the first
//   elements of grad/state (the padded tail of the last chunk is ignored).
//
// Collectives (ZeRO; the kernel reaches the communicator through KernelContext::comm; with one
// rank they are copies). A parameter of n elements is split into `world` chunks of
// c = ceil(n / world) elements, the last one zero-padded:
//   AllReduce<op = "avg"|"sum">(X) -> Y              Y = reduction of X over ranks (same shape)
//   ReduceScatter<op = "avg"|"sum">(X) -> Y          X: n elements (any shape); Y: float[c], this
//                                                    rank's chunk of the reduction of X over ranks
//   AllGather(X_chunk) -> Y                          X: float[c]; Y: the first n elements of the
//                                                    concatenated chunks, shaped as Y's type says
//   AllGatherInPlace(P)                              in place on state P (n elements): every rank's
//                                                    chunk of P is copied to all ranks (no outputs)
// AllReduce may carry until_step = T > 0 (1-bit optimizers): after optimizer step T
// (KernelContext::optimizer_step > T) it communicates nothing and Y = X, each rank keeping its own
// gradient, as DeepSpeed's engine stops all-reducing once a 1-bit optimizer freezes. With
// var_update_scaler > 0 as well (0/1 Adam; until_step = its last_var_step) it also does so on the
// steps <= T that are no variance steps (kernels/common/zoadam_math.h). step_offset = k (0 or 1)
// compares optimizer_step + k instead: the 1-bit optimizer's call, when DeepSpeed's fp16/bf16
// wrapper made one before training (passes/precision_policy.h OnebitCallsBeforeTraining).
// when_retired = 1 inverts it: the AllReduce runs only on the steps the others skip (the overflow
// verdict, which the ranks must agree on while each keeps its own gradient).
//   CompressedAllReduce<world, freeze_step>(worker_error, server_error, step, skip, X1, ..., Xk)
//       In place on the float32 states Xi (no outputs), only when step > freeze_step, skip (may be
//       an empty name) is false and world > 1; otherwise nothing. DeepSpeed's error-compensated
//       1-bit all-reduce (runtime/comm/nccl.py compressed_allreduce) of x = the Xi flattened one
//       after another (n elements), zero-padded to N elements, a multiple of world*D with
//       D = world*8/gcd(world, 8): worker_error float[N] and server_error float[N/world] are this
//       rank's (state kind compression_error). x += worker_error; s = ||x||/sqrt(N); sign(x) = -1
//       where x < 0, else +1; worker_error = x - s*sign(x); all_to_all of the packed signs (chunk r
//       to rank r) and all_gather of s; this rank's chunk c = sum_q sign_q * (s_q * (1/world)) +
//       server_error; t = ||c||/sqrt(N/world); server_error = c - t*sign(c); all_gather of the
//       packed sign(c) and of t; x = sign_r * t_r over every rank's chunk r; Xi = their parts of x.
//
// Bucketed, asynchronous collectives (made by the schedule-collectives pass from the ones above,
// passes/schedule_collectives.cc). A Start node packs its members X1..Xk (all of one dtype) into
// one flat buffer B, its only output, and issues one collective on B; the matching CollectiveWait,
// the only reader of B, waits for it and unpacks. Between the two, B is in flight: nothing else
// touches it, and the executor lets the collective progress after every node. Member i has n_i
// elements and chunks of c_i = ceil(n_i / world); a "block" holds C = sum c_i elements, member i's
// chunk at offset o_i = sum_{j<i} c_j, zero-padded (ops::BucketLayout below).
//   AllReduceStart<op>(X1..Xk) -> B              B: [sum n_i], the Xi flattened one after another;
//                                                all-reduced in place
//   ReduceScatterStart<op>(X1..Xk) -> B          B: [world*C]; block r = every member's chunk r;
//                                                reduced in place: the reduction of block `rank`
//                                                replaces block `rank` (NCCL's in-place form); the
//                                                other blocks are left undefined
//   AllGatherStart(X1..Xk) -> B                  Xi: [c_i], this rank's chunk; B: [world*C], block
//                                                `rank` packed from the Xi, block r from rank r
//   AllGatherInPlaceStart(P1..Pk) -> B           Pi: state tensors of n_i elements; this rank's
//                                                chunk of each packed into block `rank` of B [world*C]
//   CollectiveWait<kind>(B[, P1..Pk]) -> Y1..Yk   kind = the Start's op without "Start":
//       "AllReduce":        Yi (n_i elements) = B[sum_{j<i} n_j, +n_i)
//       "ReduceScatter":    Yi: [c_i] = B[rank*C + o_i, +c_i)
//       "AllGather":        Yi (n_i elements, any shape) = the first n_i elements of the chunks
//                           B[r*C + o_i, +c_i) for r = 0..world-1
//       "AllGatherInPlace": no outputs; inputs 1..k are the state tensors, written as "AllGather"
//   Release(X1..Xk)                              no outputs, no effect on data: the gathered
//                                                parameters Xi are not read after this point
//                                                (stage 3); the runtime counts live gathered elements
// Start and Wait carry `world` and `bucket` (an id, the same on the pair); reductions carry `op`.
// An AllReduceStart may carry until_step and var_update_scaler, as AllReduce does (its members
// all had them): on the steps they say, it sends nothing and its Wait unpacks B = X1..Xk.
// Every rank issues the Starts in the same order; Waits may come in any order.
#pragma once

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/optim_algorithms.h"
#include "ir/swap_ops.h"

namespace dsc::ops {

// Forward ops.
inline constexpr const char* kStopGradient = "StopGradient";
inline constexpr const char* kSampleDropout = "SampleDropout";
inline constexpr const char* kSampleRandom = "SampleRandom";

// Gradient ops.
inline constexpr const char* kReluGrad = "ReluGrad";
inline constexpr const char* kLeakyReluGrad = "LeakyReluGrad";
inline constexpr const char* kSigmoidGrad = "SigmoidGrad";
inline constexpr const char* kTanhGrad = "TanhGrad";
inline constexpr const char* kSoftmaxGrad = "SoftmaxGrad";
inline constexpr const char* kLogSoftmaxGrad = "LogSoftmaxGrad";
inline constexpr const char* kLayerNormalizationGrad = "LayerNormalizationGrad";
inline constexpr const char* kBatchNormalizationGrad = "BatchNormalizationGrad";
inline constexpr const char* kConvGrad = "ConvGrad";
inline constexpr const char* kConvTransposeGrad = "ConvTransposeGrad";
inline constexpr const char* kMaxPoolGrad = "MaxPoolGrad";
inline constexpr const char* kAveragePoolGrad = "AveragePoolGrad";
inline constexpr const char* kResizeGrad = "ResizeGrad";
inline constexpr const char* kGridSampleGrad = "GridSampleGrad";
inline constexpr const char* kGatherGrad = "GatherGrad";
inline constexpr const char* kSliceGrad = "SliceGrad";
inline constexpr const char* kGatherElementsGrad = "GatherElementsGrad";
inline constexpr const char* kGatherNDGrad = "GatherNDGrad";
inline constexpr const char* kDropoutGrad = "DropoutGrad";
inline constexpr const char* kSoftmaxCrossEntropyLossGrad = "SoftmaxCrossEntropyLossGrad";
inline constexpr const char* kNegativeLogLikelihoodLossGrad = "NegativeLogLikelihoodLossGrad";
inline constexpr const char* kGeluGrad = "GeluGrad";
inline constexpr const char* kMishGrad = "MishGrad";
inline constexpr const char* kHardSwishGrad = "HardSwishGrad";
inline constexpr const char* kHardSigmoidGrad = "HardSigmoidGrad";
inline constexpr const char* kSoftplusGrad = "SoftplusGrad";
inline constexpr const char* kEluGrad = "EluGrad";
inline constexpr const char* kCeluGrad = "CeluGrad";
inline constexpr const char* kSeluGrad = "SeluGrad";
inline constexpr const char* kSoftsignGrad = "SoftsignGrad";
inline constexpr const char* kRMSNormalizationGrad = "RMSNormalizationGrad";
inline constexpr const char* kAttentionGrad = "AttentionGrad";

// Fused ops.
inline constexpr const char* kFusedMatMul = "FusedMatMul";
inline constexpr const char* kGelu = "Gelu";
inline constexpr const char* kAttention = "Attention";

// Reductions.
inline constexpr const char* kSumSquares = "SumSquares";
inline constexpr const char* kClipScale = "ClipScale";

// In-place training ops.
inline constexpr const char* kAccumulate = "Accumulate";
inline constexpr const char* kZeroFill = "ZeroFill";
inline constexpr const char* kAssign = "Assign";
inline constexpr const char* kAdamStep = "AdamStep";
inline constexpr const char* kSGDStep = "SGDStep";
inline constexpr const char* kOptimStep = "OptimStep";
inline constexpr const char* kLambMoments = "LambMoments";
inline constexpr const char* kLambApply = "LambApply";
inline constexpr const char* kMuonMomentum = "MuonMomentum";
inline constexpr const char* kMuonApply = "MuonApply";
inline constexpr const char* kOnebitMomentum = "OnebitMomentum";
inline constexpr const char* kOnebitAdamStep = "OnebitAdamStep";
inline constexpr const char* kZoadamStep = "ZoadamStep";
inline constexpr const char* kZoadamPhase = "ZoadamPhase";
inline constexpr const char* kZoadamApply = "ZoadamApply";
inline constexpr const char* kOnebitLambSnapshot = "OnebitLambSnapshot";
inline constexpr const char* kOnebitLambMomentum = "OnebitLambMomentum";
inline constexpr const char* kOnebitLambStep = "OnebitLambStep";

// Collectives.
inline constexpr const char* kAllReduce = "AllReduce";
inline constexpr const char* kReduceScatter = "ReduceScatter";
inline constexpr const char* kAllGather = "AllGather";
inline constexpr const char* kAllGatherInPlace = "AllGatherInPlace";
inline constexpr const char* kAllReduceStart = "AllReduceStart";
inline constexpr const char* kReduceScatterStart = "ReduceScatterStart";
inline constexpr const char* kAllGatherStart = "AllGatherStart";
inline constexpr const char* kAllGatherInPlaceStart = "AllGatherInPlaceStart";
inline constexpr const char* kCollectiveWait = "CollectiveWait";
inline constexpr const char* kRelease = "Release";
inline constexpr const char* kCompressedAllReduce = "CompressedAllReduce";

// DeepSpeed's padding unit of a compressed all-reduce: each buffer is a multiple of world*D
// elements, D = world*8/gcd(world, 8), so every rank's chunk packs into whole bytes of signs.
inline int64_t CompressedAllReduceUnit(int64_t world) { return world * (world * 8 / std::gcd(world, int64_t{8})); }
// The padded length N of a compressed buffer of n elements.
inline int64_t CompressedAllReduceSize(int64_t n, int64_t world) {
  const int64_t unit = CompressedAllReduceUnit(world);
  return n % unit == 0 ? n : n + unit - n % unit;
}

// Chunk length of an n-element tensor split over `world` ranks.
inline int64_t ChunkSize(int64_t n, int64_t world) { return (n + world - 1) / world; }

// The Start op of a collective kind ("AllReduce" -> "AllReduceStart"); empty for other names.
inline std::string StartOpOf(const std::string& kind) {
  if (kind == kAllReduce || kind == kReduceScatter || kind == kAllGather || kind == kAllGatherInPlace)
    return kind + "Start";
  return "";
}
// The kind of a Start op ("AllGatherStart" -> "AllGather"); empty when `op` is not a Start.
inline std::string KindOfStart(const std::string& op) {
  for (const char* k : {kAllReduceStart, kReduceScatterStart, kAllGatherStart, kAllGatherInPlaceStart})
    if (op == k) return op.substr(0, op.size() - 5);
  return "";
}

// The CollectiveWait that reads a Start's buffer B (its input 0), or null when none does.
inline const Node* WaitOf(const Node& start) {
  if (start.num_outputs() != 1 || !start.output(0)) return nullptr;
  for (const Use& u : start.output(0)->uses())
    if (u.node->domain() == kDscDomain && u.node->op_type() == kCollectiveWait && u.input_index == 0) return u.node;
  return nullptr;
}

// Where each member of a bucket lives in its buffer B (see "Bucketed, asynchronous collectives").
struct BucketLayout {
  struct Member {
    int64_t numel = 0;        // n_i
    int64_t chunk = 0;        // c_i
    int64_t block_offset = 0; // o_i: inside a block
    int64_t flat_offset = 0;  // sum_{j<i} n_j: inside an AllReduce buffer
  };
  std::vector<Member> members;
  int64_t world = 1;
  int64_t block = 0;  // C
  int64_t total = 0;  // sum n_i

  BucketLayout(const std::vector<int64_t>& numels, int64_t world_size) : world(world_size) {
    for (int64_t n : numels) {
      members.push_back(Member{n, ChunkSize(n, world), block, total});
      block += members.back().chunk;
      total += n;
    }
  }
  // Elements of B for a kind: AllReduce sum n_i, the others world*C.
  int64_t BufferElements(const std::string& kind) const { return kind == kAllReduce ? total : world * block; }
};

// Reserved graph-input names the runtime binds in the step program (scalars), and outputs it reads.
inline constexpr const char* kLrInput = "dsc::lr";        // float[]: learning rate of this step
inline constexpr const char* kStepInput = "dsc::step";    // int64[]: 1-based optimizer step
inline constexpr const char* kBeta1Input = "dsc::beta1";  // float[]: only when a schedule cycles momentum
inline constexpr const char* kGradNormOutput = "dsc::grad_norm";  // float[]: global norm before clipping
// Mixed precision. dsc::loss_scale is an input of micro_step (autodiff seeds d(loss) with
// loss_scale / gas) and of step (gradients are unscaled by it) only in plans that scale the loss
// (fp16, AMP). dsc::overflow is a step output only in plans that check gradients for inf/NaN
// (fp16, AMP, bf16 with check_grad_overflow): true when any gradient of any rank was inf/NaN, in
// which case the step's updates were skipped; the runtime then does not advance the LR schedule
// or the optimizer step counter it feeds through dsc::step, and updates the loss scale.
inline constexpr const char* kLossScaleInput = "dsc::loss_scale";  // float[]
inline constexpr const char* kOverflowOutput = "dsc::overflow";    // bool[]
// The dtype of a reserved scalar input above (shape []), or kUndefined for any other name.
inline DType ReservedScalarDType(const std::string& name) {
  if (name == kLrInput || name == kBeta1Input || name == kLossScaleInput) return DType::kFloat32;
  if (name == kStepInput) return DType::kInt64;
  return DType::kUndefined;
}
// State names derived from a parameter's name.
inline std::string GradAccName(const std::string& p) { return p + "::grad"; }
inline std::string ExpAvgName(const std::string& p) { return p + "::exp_avg"; }
inline std::string ExpAvgSqName(const std::string& p) { return p + "::exp_avg_sq"; }
inline std::string MomentumName(const std::string& p) { return p + "::momentum_buffer"; }
// The fp32 master copy of a parameter whose compute copy (the state named p) is half precision.
inline std::string MasterName(const std::string& p) { return p + "::master"; }
// 0/1 Adam's per-rank states (kind compression_error).
inline std::string MomentumAccumulatorName(const std::string& p) { return p + "::momentum_accumulator"; }
inline std::string LrsName(const std::string& p) { return p + "::lrs"; }

// True for the optimizer updates (AdamStep, SGDStep, OptimStep, Lamb's two, Muon's two, 1-bit
// Adam's two, 1-bit Lamb's momentum and step, 0/1 Adam's ZoadamStep; its ZoadamApply reads no
// gradient): input 0
// the parameter (or its master), input 1 its gradient (LambApply: the sums of squares; MuonApply:
// the momentum update), the optimizer states among the inputs after them. Lamb, Muon and 1-bit
// Adam update a parameter with two such nodes.
inline bool IsOptimizerUpdate(const std::string& domain, const std::string& op) {
  return domain == kDscDomain && (op == kAdamStep || op == kSGDStep || op == kOptimStep || op == kLambMoments ||
                                  op == kLambApply || op == kMuonMomentum || op == kMuonApply ||
                                  op == kOnebitMomentum || op == kOnebitAdamStep || op == kZoadamStep ||
                                  op == kOnebitLambMomentum || op == kOnebitLambStep);
}

// The index of an update's optional param_copy input (see "param_copy" above), or -1 for an op
// that takes none.
inline int ParamCopyInput(const Node& n) {
  if (n.domain() != kDscDomain) return -1;
  const std::string& op = n.op_type();
  if (op == kAdamStep) return 9;
  if (op == kSGDStep) return 7;
  if (op == kLambApply) return 8;
  if (op == kOptimStep) return static_cast<int>(OptimStateSuffixesOf(n).size()) + 7;
  return -1;
}

// The index of an update's optimizer state that is one scalar per parameter rather than one value
// per element (OptimStep's mu_product), or -1 when it has none: ZeRO keeps it whole on every rank.
inline int WholeStateInput(const Node& n) {
  if (n.domain() != kDscDomain || n.op_type() != kOptimStep) return -1;
  const int index = static_cast<int>(OptimStateSuffixesOf(n).size()) + 8;
  return static_cast<int>(n.num_inputs()) > index && n.input(static_cast<size_t>(index)) ? index : -1;
}

// True for the updates whose gradient (input 1) may be float32, float16 or bfloat16.
inline bool ReadsAnyFloatGradient(const std::string& domain, const std::string& op) {
  return domain == kDscDomain &&
         (op == kAdamStep || op == kSGDStep || op == kOptimStep || op == kLambMoments || op == kMuonMomentum);
}

// True for ai.dscompile.StopGradient, which is ONNX's Identity to everything but autodiff.
inline bool IsStopGradient(const Node& n) { return n.domain() == kDscDomain && n.op_type() == kStopGradient; }

// True for the in-place ops above: they have effects beyond their outputs, so dce keeps them.
inline bool HasSideEffects(const std::string& domain, const std::string& op) {
  return IsOptimizerUpdate(domain, op) ||
         (domain == kDscDomain && (op == kAccumulate || op == kZeroFill || op == kAssign ||
                                   op == kAllGatherInPlace || op == kCollectiveWait || op == kRelease ||
                                   op == kCompressedAllReduce || op == kZoadamPhase || op == kZoadamApply ||
                                   op == kSwapInWait || op == kSwapOut || op == kSwapOutWait));
}

}  // namespace dsc::ops

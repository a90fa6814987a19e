// Dropout's counter-based masks, shared by kernels/cpu/dropout.cc and kernels/cuda/dropout.cu so a
// mask is bit-identical on both: element i's keep bit is a pure function of (seed, step, node, its
// sample's index in the step's global batch, its index within the sample) (or of (seed, step, node,
// i) for ONNX Dropout), whatever the thread count, grid or device.
//
//   const DropoutMask m{DropoutKey(seed, step, NodeId(name)), ratio, layout...};
//   keep[i] = m.Keep(i);  y[i] = keep[i] ? x[i] * m.Scale() : 0
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/status.h"

#include "kernels/common/hd.h"

namespace dsc::dropout {

// SplitMix64's finaliser: a bijective 64-bit mix, enough for masks (not for cryptography).
DSC_HD uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// FNV-1a of the node's first output name: a node id that is stable across runs and processes
// (std::hash is not guaranteed to be). Host only.
inline uint64_t NodeId(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ULL;
  return h;
}

// The id a Dropout node's mask is keyed by: its first output's name, or the name in its `replays`
// attribute when the node recomputes another's output (rematerialize), so the copy draws the same mask.
template <typename NodeT>
uint64_t MaskNodeId(const NodeT& node) {
  return NodeId(node.GetString("replays", node.output(0)->name()));
}

// The key of one node's mask in one step.
DSC_HD uint64_t DropoutKey(uint64_t seed, int64_t step, uint64_t node_id) {
  return Mix(Mix(Mix(seed) ^ static_cast<uint64_t>(step)) ^ node_id);
}

// 1 / (1 - ratio), and 0 when everything is dropped.
DSC_HD float DropoutScale(float ratio) { return ratio < 1.0f ? 1.0f / (1.0f - ratio) : 0.0f; }

// The mask of one node in one step. ONNX Dropout hashes (key, element index); SampleDropout
// (by_sample) hashes (key, the sample's index in the step's global batch, the element's index
// within its sample), so a sample draws the same mask whichever rank and micro-step it lands on,
// and no two samples share one. Element i lies at (o, a, e) around the batch axis:
// i = (o * extent + a) * inner + e, and sample first_sample + a / rows (rows > 1 when the batch
// was flattened into the axis, e.g. [batch*seq, hidden]).
struct DropoutMask {
  uint64_t key = 0;
  float ratio = 0.5f;
  bool by_sample = false;
  int64_t extent = 1, inner = 1, rows = 1, first_sample = 0;

  // keep = u >= ratio with u = Uniform(i). The index arithmetic runs in I: the CUDA kernels pass
  // uint32_t when every index fits (64-bit divisions are emulated on GPUs), with the same result.
  template <typename I = int64_t>
  DSC_HD bool Keep(I i) const {
    return Uniform(i) >= ratio;
  }

  // Element i's uniform draw in [0, 1) (24 bits, exact in float); `lane` > 0 draws independent
  // further numbers for the same element (a normal draw needs two).
  template <typename I = int64_t>
  DSC_HD float Uniform(I i, uint64_t lane = 0) const {
    uint64_t k = key, j = static_cast<uint64_t>(i);
    if (by_sample) {
      const I in = static_cast<I>(inner), ext = static_cast<I>(extent), r = static_cast<I>(rows);
      const I q = i / in, e = i - q * in;   // q = o * extent + a
      const I o = q / ext, a = q - o * ext;
      k = Mix(key ^ Mix(static_cast<uint64_t>(first_sample + static_cast<int64_t>(a / r))));
      j = static_cast<uint64_t>((static_cast<int64_t>(o) * rows + static_cast<int64_t>(a % r)) * inner +
                                static_cast<int64_t>(e));
    }
    const uint64_t bits = lane == 0 ? Mix(k + j) : Mix(Mix(k + j) ^ (lane * 0x632be59bd9b4e019ULL));
    return static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);
  }
};

// What SampleRandom (ir/dsc_ops.h) draws for element i from the counters above: ONNX's
// RandomUniform[Like] (low + (high - low) u, u in [0, 1) as torch.rand), RandomNormal[Like]
// (mean + scale z, z from Box-Muller in double so the CPU and a GPU round to the same float
// whenever their double log/cos agree to 2^-29) and Bernoulli (1 where u < p, as torch.bernoulli).
enum class Distribution : int { kUniform = 0, kNormal = 1, kBernoulli = 2 };

struct RandomDraw {
  DropoutMask stream;  // its ratio is unused
  Distribution dist = Distribution::kUniform;
  float a = 0.0f, b = 1.0f;  // (low, high) or (mean, scale)

  template <typename I = int64_t>
  DSC_HD float operator()(I i, float p = 0.0f) const {
    const float u = stream.Uniform(i);
    switch (dist) {
      case Distribution::kUniform:
        return a + (b - a) * u;
      case Distribution::kNormal: {
        const double u1 = 1.0 - static_cast<double>(u);  // (0, 1]: the log is finite
        const double u2 = static_cast<double>(stream.Uniform(i, 1));
        const double z = ::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586 * u2);
        return a + b * static_cast<float>(z);
      }
      case Distribution::kBernoulli:
        return u < p ? 1.0f : 0.0f;
    }
    return 0.0f;
  }
};

// The counters' layout for a node over static `dims` (the data of a SampleDropout or ONNX Dropout,
// the output of a SampleRandom; host only): with `per_sample`, the batch_axis and sample_rows
// attributes, checked against `dims` (`what` names the tensor in errors); otherwise, or with axis
// -1, keyed by element. Key, ratio and first sample are the caller's, per run.
template <typename NodeT>
StatusOr<DropoutMask> ReadSampleLayout(const NodeT& node, const std::vector<int64_t>& dims, bool per_sample,
                                       const char* what) {
  DropoutMask m;
  int64_t n = 1;
  for (int64_t x : dims) n *= x;
  m.inner = n;
  if (!per_sample) return m;
  const int64_t axis = node.GetInt("batch_axis", -1), rows = node.GetInt("sample_rows", 1);
  const int64_t rank = static_cast<int64_t>(dims.size());
  if (axis < -1 || axis >= rank) return InvalidArgument("batch_axis ", axis, " is outside the ", what, "'s rank ", rank);
  if (axis < 0) return m;
  const size_t ax = static_cast<size_t>(axis);
  if (rows < 1 || dims[ax] % rows != 0)
    return InvalidArgument("sample_rows ", rows, " does not divide dim ", axis, " (", dims[ax], ") of the ", what);
  m.by_sample = true;
  m.extent = dims[ax];
  m.inner = 1;
  for (size_t k = ax + 1; k < dims.size(); ++k) m.inner *= dims[k];
  m.rows = rows;
  return m;
}

// SampleRandom's attributes and sample layout for an output of static dims `dims` (host only):
// everything of the draw but the step's key and first sample.
template <typename NodeT>
StatusOr<RandomDraw> ReadRandomDraw(const NodeT& node, const std::vector<int64_t>& dims) {
  RandomDraw d;
  const std::string dist = node.GetString("distribution", "");
  if (dist == "uniform") {
    d.dist = Distribution::kUniform;
    d.a = node.GetFloat("low", 0.0f), d.b = node.GetFloat("high", 1.0f);
  } else if (dist == "normal") {
    d.dist = Distribution::kNormal;
    d.a = node.GetFloat("mean", 0.0f), d.b = node.GetFloat("scale", 1.0f);
  } else if (dist == "bernoulli") {
    d.dist = Distribution::kBernoulli;
  } else {
    return InvalidArgument("distribution '", dist, "' is not uniform, normal or bernoulli");
  }
  if ((d.dist == Distribution::kBernoulli) != (node.num_inputs() == 1 && node.input(0) != nullptr))
    return InvalidArgument("a bernoulli draw takes its probabilities as its one input, the others no input");
  ASSIGN_OR_RETURN(d.stream, ReadSampleLayout(node, dims, /*per_sample=*/true, "output"));
  return d;
}

}  // namespace dsc::dropout

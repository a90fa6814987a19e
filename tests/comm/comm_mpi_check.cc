// Checks every MPI collective on every rank against its formula, and comms_logger's record of
// each (message size, bytes sent, a latency); run by ctest under
// `mpirun -np 2|3|4`. With --ring every all-reduce, reduce-scatter and all-gather takes the ring
// of point-to-point messages (MpiCommunicatorOptions), in segments of 64 bytes so that blocks span
// several. With --fail=abort|exit|kill|hang the last rank fails while the others wait in an
// all-reduce, for the tests that the whole job then ends and names the rank.
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <algorithm>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ir/dtype.h"
#include "runtime/communicator.h"

namespace dsc {
namespace {

// Counts failed checks on this rank; every failure is printed with the rank.
class Checker {
 public:
  explicit Checker(int rank) : rank_(rank) {}
  bool Expect(bool ok, const std::string& what) {
    if (!ok) {
      ++failures_;
      std::cerr << "rank " << rank_ << ": FAIL: " << what << std::endl;
    }
    return ok;
  }
  bool Ok(const Status& s, const std::string& what) { return Expect(s.ok(), what + ": " + s.ToString()); }
  int64_t failures() const { return failures_; }

 private:
  int rank_;
  int64_t failures_ = 0;
};

Status Await(StatusOr<std::unique_ptr<CommHandle>> h) {
  if (!h.ok()) return h.status();
  return (*h)->Wait();
}

// Bytes-sent expectations worked out here rather than through the library's helpers.
struct Expected {
  std::map<std::string, int64_t> bytes = {
      {"all_reduce", 0}, {"reduce_scatter", 0}, {"all_gather", 0}, {"broadcast", 0}, {"all_to_all", 0}};
};

const std::vector<int64_t> kCounts = {0, 1, 2, 3, 5, 7, 17, 1000, 4099};  // several not divisible by 2, 3 or 4

void CheckAllReduce(Communicator& c, Checker& ck, Expected& ex) {
  const int r = c.rank(), n = c.size();
  for (int64_t count : kCounts) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg}) {
      // Halves and small integers: every partial sum is exact, so any reduction order agrees.
      std::vector<float> f(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) f[i] = static_cast<float>(r + 1) * 0.5f + static_cast<float>(i % 97);
      const std::string what = StrCat("all_reduce float ", ReduceOpName(op), " count ", count);
      if (!ck.Ok(Await(c.AllReduce(f.data(), count, DType::kFloat32, op)), what)) continue;
      ex.bytes["all_reduce"] += 2 * (n - 1) * count * 4 / n;
      for (int64_t i = 0; i < count; ++i) {
        float sum = 0.25f * static_cast<float>(n * (n + 1)) + static_cast<float>(n * (i % 97));
        float want = op == ReduceOp::kAvg ? sum / static_cast<float>(n) : sum;
        if (!ck.Expect(f[i] == want, StrCat(what, ": [", i, "] = ", f[i], ", want ", want))) break;
      }
    }
  }
  // int64 beyond float precision, and double averages.
  std::vector<int64_t> q(1001);
  for (size_t i = 0; i < q.size(); ++i) q[i] = (int64_t{1} << 40) + r * 1000003 + static_cast<int64_t>(i);
  if (ck.Ok(Await(c.AllReduce(q.data(), 1001, DType::kInt64, ReduceOp::kSum)), "all_reduce int64")) {
    ex.bytes["all_reduce"] += 2 * (n - 1) * 1001 * 8 / n;
    for (size_t i = 0; i < q.size(); ++i) {
      const int64_t want = n * ((int64_t{1} << 40) + static_cast<int64_t>(i)) + 1000003LL * n * (n - 1) / 2;
      if (!ck.Expect(q[i] == want, StrCat("all_reduce int64 [", i, "] = ", q[i], ", want ", want))) break;
    }
  }
  // int32, negative and not divisible by 2, 3 or 4 ranks.
  std::vector<int32_t> w(103);
  for (size_t i = 0; i < w.size(); ++i) w[i] = -7 * r + static_cast<int32_t>(i);
  if (ck.Ok(Await(c.AllReduce(w.data(), 103, DType::kInt32, ReduceOp::kSum)), "all_reduce int32")) {
    ex.bytes["all_reduce"] += 2 * (n - 1) * 103 * 4 / n;
    for (size_t i = 0; i < w.size(); ++i) {
      const int32_t want = -7 * n * (n - 1) / 2 + n * static_cast<int32_t>(i);
      if (!ck.Expect(w[i] == want, StrCat("all_reduce int32 [", i, "] = ", w[i], ", want ", want))) break;
    }
  }
  std::vector<double> d(33, static_cast<double>(r));
  if (ck.Ok(Await(c.AllReduce(d.data(), 33, DType::kFloat64, ReduceOp::kAvg)), "all_reduce double avg")) {
    ex.bytes["all_reduce"] += 2 * (n - 1) * 33 * 8 / n;
    ck.Expect(d[32] == (n - 1) / 2.0, StrCat("all_reduce double avg = ", d[32]));
  }
  // Two in flight at once, waited in the opposite order.
  std::vector<float> a(100, 1.f), b(300, 2.f);
  auto ha = c.AllReduce(a.data(), 100, DType::kFloat32, ReduceOp::kSum);
  auto hb = c.AllReduce(b.data(), 300, DType::kFloat32, ReduceOp::kSum);
  if (ck.Expect(ha.ok() && hb.ok(), "two all_reduces in flight")) {
    ck.Ok((*hb)->Wait(), "wait b");
    ck.Ok((*ha)->Wait(), "wait a");
    ex.bytes["all_reduce"] += 2 * (n - 1) * 400 / n + 2 * (n - 1) * 1200 / n;
    ck.Expect(a[99] == static_cast<float>(n) && b[299] == 2.f * static_cast<float>(n), "overlapped all_reduce results");
  }
  // Errors are Status values naming the rank, not crashes.
  auto bad = c.AllReduce(q.data(), 4, DType::kInt64, ReduceOp::kAvg);
  ck.Expect(!bad.ok() && bad.status().message().find(StrCat("rank ", r)) != std::string::npos,
            "avg on int64 is an error naming the rank");
}

void CheckReduceScatter(Communicator& c, Checker& ck, Expected& ex) {
  const int r = c.rank(), n = c.size();
  for (int64_t rc : {int64_t{1}, int64_t{3}, int64_t{64}, int64_t{1001}}) {
    // send[j] = 1000·rank + j, so block r sums to 1000·n(n-1)/2 + n·(r·rc + i).
    auto fill = [&](float* p) {
      for (int64_t j = 0; j < n * rc; ++j) p[j] = static_cast<float>(1000 * r + j);
    };
    auto want = [&](int64_t i, ReduceOp op) {
      float sum = static_cast<float>(1000 * n * (n - 1) / 2 + n * (r * rc + i));
      return op == ReduceOp::kAvg ? sum / static_cast<float>(n) : sum;
    };
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg}) {
      for (const char* mode : {"separate", "in place (recv = send)", "own shard (recv = send + rank*rc)"}) {
        std::vector<float> send(static_cast<size_t>(n * rc)), other(static_cast<size_t>(rc), -1.f);
        fill(send.data());
        float* recv = mode[0] == 's' ? other.data() : mode[0] == 'i' ? send.data() : send.data() + r * rc;
        const std::string what = StrCat("reduce_scatter ", ReduceOpName(op), " ", mode, " recv_count ", rc);
        if (!ck.Ok(Await(c.ReduceScatter(send.data(), recv, rc, DType::kFloat32, op)), what)) continue;
        ex.bytes["reduce_scatter"] += (n - 1) * n * rc * 4 / n;
        for (int64_t i = 0; i < rc; ++i)
          if (!ck.Expect(recv[i] == want(i, op), StrCat(what, ": [", i, "] = ", recv[i], ", want ", want(i, op))))
            break;
      }
    }
  }
  std::vector<int64_t> send(static_cast<size_t>(n) * 5), recv(5);
  for (size_t j = 0; j < send.size(); ++j) send[j] = (int64_t{1} << 50) + static_cast<int64_t>(j) * (r + 1);
  if (ck.Ok(Await(c.ReduceScatter(send.data(), recv.data(), 5, DType::kInt64, ReduceOp::kSum)),
            "reduce_scatter int64")) {
    ex.bytes["reduce_scatter"] += (n - 1) * n * 5 * 8 / n;
    for (int64_t i = 0; i < 5; ++i) {
      const int64_t j = r * 5 + i, want = n * (int64_t{1} << 50) + j * n * (n + 1) / 2;
      ck.Expect(recv[i] == want, StrCat("reduce_scatter int64 [", i, "] = ", recv[i], ", want ", want));
    }
  }
}

void CheckAllGather(Communicator& c, Checker& ck, Expected& ex) {
  const int r = c.rank(), n = c.size();
  for (int64_t sc : {int64_t{1}, int64_t{5}, int64_t{333}}) {
    for (bool in_place : {false, true}) {
      std::vector<float> recv(static_cast<size_t>(n * sc), -1.f), send(static_cast<size_t>(sc));
      for (int64_t i = 0; i < sc; ++i) send[i] = static_cast<float>(10000 * r + i);
      const float* from = send.data();
      if (in_place) {
        std::copy(send.begin(), send.end(), recv.begin() + r * sc);
        from = recv.data() + r * sc;
      }
      const std::string what = StrCat("all_gather float", in_place ? " in place" : "", " send_count ", sc);
      if (!ck.Ok(Await(c.AllGather(from, recv.data(), sc, DType::kFloat32)), what)) continue;
      ex.bytes["all_gather"] += (n - 1) * n * sc * 4 / n;
      for (int64_t j = 0; j < n * sc; ++j) {
        const float want = static_cast<float>(10000 * (j / sc) + j % sc);
        if (!ck.Expect(recv[j] == want, StrCat(what, ": [", j, "] = ", recv[j], ", want ", want))) break;
      }
    }
  }
  // Dtypes MPI has no type for travel as bytes; int64 as itself.
  std::vector<uint16_t> h = {static_cast<uint16_t>(0x3c00 + r), static_cast<uint16_t>(0xbc00 + r), 7};
  std::vector<uint16_t> hall(3 * static_cast<size_t>(n));
  if (ck.Ok(Await(c.AllGather(h.data(), hall.data(), 3, DType::kFloat16)), "all_gather float16")) {
    ex.bytes["all_gather"] += (n - 1) * n * 3 * 2 / n;
    for (int k = 0; k < n; ++k)
      ck.Expect(hall[3 * k] == 0x3c00 + k && hall[3 * k + 1] == 0xbc00 + k && hall[3 * k + 2] == 7,
                StrCat("all_gather float16 block ", k));
  }
  std::vector<int64_t> q = {-(int64_t{1} << 45) - r}, qall(static_cast<size_t>(n));
  if (ck.Ok(Await(c.AllGather(q.data(), qall.data(), 1, DType::kInt64)), "all_gather int64")) {
    ex.bytes["all_gather"] += (n - 1) * n * 8 / n;
    for (int k = 0; k < n; ++k) ck.Expect(qall[k] == -(int64_t{1} << 45) - k, StrCat("all_gather int64 [", k, "]"));
  }
}

// Block q of rank r's send buffer carries (r, q, i); after the exchange block q of the receive
// buffer must hold (q, r, i). Bytes (uint8, the 1-bit signs' dtype) and floats, apart and in place.
void CheckAllToAll(Communicator& c, Checker& ck, Expected& ex) {
  const int r = c.rank(), n = c.size();
  for (int64_t bc : {int64_t{0}, int64_t{1}, int64_t{3}, int64_t{1000}}) {
    for (bool in_place : {false, true}) {
      std::vector<float> send(static_cast<size_t>(n * bc)), recv(static_cast<size_t>(n * bc), -1.f);
      for (int q = 0; q < n; ++q)
        for (int64_t i = 0; i < bc; ++i) send[q * bc + i] = static_cast<float>(1000000 * r + 10000 * q + i);
      if (in_place) recv = send;
      const std::string what = StrCat("all_to_all float", in_place ? " in place" : "", " block_count ", bc);
      if (!ck.Ok(Await(c.AllToAll(in_place ? recv.data() : send.data(), recv.data(), bc, DType::kFloat32)), what))
        continue;
      ex.bytes["all_to_all"] += (n - 1) * n * bc * 4 / n;
      for (int q = 0; q < n; ++q)
        for (int64_t i = 0; i < bc; ++i) {
          const float want = static_cast<float>(1000000 * q + 10000 * r + i);
          if (!ck.Expect(recv[q * bc + i] == want, StrCat(what, ": block ", q, " [", i, "] = ", recv[q * bc + i], ", want ", want)))
            return;
        }
    }
  }
  std::vector<uint8_t> bits(static_cast<size_t>(2 * n)), got(static_cast<size_t>(2 * n));
  for (int q = 0; q < n; ++q) bits[2 * q] = static_cast<uint8_t>(16 * r + q), bits[2 * q + 1] = 0xA5;
  if (ck.Ok(Await(c.AllToAll(bits.data(), got.data(), 2, DType::kUInt8)), "all_to_all uint8")) {
    ex.bytes["all_to_all"] += (n - 1) * n * 2 / n;
    for (int q = 0; q < n; ++q)
      ck.Expect(got[2 * q] == 16 * q + r && got[2 * q + 1] == 0xA5, StrCat("all_to_all uint8 block ", q));
  }
}

// float16/bfloat16 sums (communicator.h): each combination of two partial sums is
// round(float(a) + float(b)); kAvg is round(float(sum) / size). References from ir/dtype.h's
// conversions, worked here independently of the communicator's own.
float Widen(uint16_t h, DType t) { return t == DType::kBFloat16 ? BFloat16ToFloat(h) : HalfToFloat(h); }
uint16_t Narrow(float f, DType t) { return t == DType::kBFloat16 ? FloatToBFloat16(f) : FloatToHalf(f); }

void CheckHalfReductions(Communicator& c, Checker& ck, Expected& ex) {
  const int r = c.rank(), n = c.size();
  for (DType t : {DType::kFloat16, DType::kBFloat16}) {
    const std::string name = DTypeName(t);
    // Multiples of 1/2 below 2^7 in magnitude: every partial sum is exact in both dtypes, so the
    // result is the exact sum whatever order MPI combines in; the average is rounded once.
    auto value = [&](int rank, int64_t i) {
      return static_cast<float>((rank + 1) * (i % 5) - 2 * (i % 13)) * 0.5f;
    };
    for (int64_t count : {int64_t{1}, int64_t{7}, int64_t{1000}, int64_t{4099}}) {
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg}) {
        std::vector<uint16_t> h(static_cast<size_t>(count));
        for (int64_t i = 0; i < count; ++i) h[i] = Narrow(value(r, i), t);
        const std::string what = StrCat("all_reduce ", name, " ", ReduceOpName(op), " count ", count);
        if (!ck.Ok(Await(c.AllReduce(h.data(), count, t, op)), what)) continue;
        ex.bytes["all_reduce"] += 2 * (n - 1) * count * 2 / n;  // 2-byte elements on the wire
        for (int64_t i = 0; i < count; ++i) {
          float sum = 0;
          for (int q = 0; q < n; ++q) sum += value(q, i);
          const uint16_t want = op == ReduceOp::kAvg ? Narrow(sum / static_cast<float>(n), t) : Narrow(sum, t);
          if (!ck.Expect(h[i] == want, StrCat(what, ": [", i, "] = ", Widen(h[i], t), ", want ", Widen(want, t)))) break;
        }
      }
      // reduce_scatter of the same values: rank r gets block r.
      const int64_t rc = count;
      std::vector<uint16_t> send(static_cast<size_t>(n * rc)), recv(static_cast<size_t>(rc));
      for (int64_t j = 0; j < n * rc; ++j) send[j] = Narrow(value(r, j), t);
      const std::string what = StrCat("reduce_scatter ", name, " avg recv_count ", rc);
      if (ck.Ok(Await(c.ReduceScatter(send.data(), recv.data(), rc, t, ReduceOp::kAvg)), what)) {
        ex.bytes["reduce_scatter"] += (n - 1) * n * rc * 2 / n;
        for (int64_t i = 0; i < rc; ++i) {
          float sum = 0;
          for (int q = 0; q < n; ++q) sum += value(q, r * rc + i);
          const uint16_t want = Narrow(sum / static_cast<float>(n), t);
          if (!ck.Expect(recv[i] == want, StrCat(what, ": [", i, "] = ", Widen(recv[i], t), ", want ", Widen(want, t))))
            break;
        }
      }
    }
    // Rounding of the pairwise sum, to nearest even. Ranks 0 and 1 contribute, the rest zeros (a
    // zero partial sum changes nothing): float16 ties 1 + 2^-11 -> 1 and (1 + 2^-10) + 2^-11 ->
    // 1 + 2^-9; bfloat16 the same one place up (ulp 2^-7).
    const float ulp = t == DType::kBFloat16 ? 0x1p-7f : 0x1p-10f;
    // 3 + 1.5 ulp: in [2, 4) the spacing is 2 ulp, so 0.75 of it: up to 3 + 2 ulp.
    const float a0[] = {1.0f, 1.0f + ulp, 3.0f, -1.0f}, a1[] = {ulp / 2, ulp / 2, ulp * 1.5f, -ulp / 2};
    const float want_sum[] = {1.0f, 1.0f + 2 * ulp, 3.0f + 2 * ulp, -1.0f};
    std::vector<uint16_t> tie(4, 0);
    for (int i = 0; i < 4; ++i) tie[i] = r == 0 ? Narrow(a0[i], t) : r == 1 ? Narrow(a1[i], t) : uint16_t{0};
    if (ck.Ok(Await(c.AllReduce(tie.data(), 4, t, ReduceOp::kSum)), StrCat("all_reduce ", name, " ties"))) {
      ex.bytes["all_reduce"] += 2 * (n - 1) * 4 * 2 / n;
      for (int i = 0; i < 4; ++i)
        ck.Expect(tie[i] == Narrow(want_sum[i], t),
                  StrCat("all_reduce ", name, " tie ", i, " = ", Widen(tie[i], t), ", want ", want_sum[i]));
    }
    // Random values on every rank: within the documented bound of the once-rounded float sum
    // (each of the n-1 combinations rounds by at most half an ulp of a partial sum, all below
    // S = sum |x|), and the same bits on every rank.
    const int64_t count = 999;
    std::vector<uint16_t> x(static_cast<size_t>(count));
    std::vector<std::vector<float>> all(static_cast<size_t>(n), std::vector<float>(static_cast<size_t>(count)));
    for (int q = 0; q < n; ++q) {
      uint32_t seed = 12345u + 977u * static_cast<uint32_t>(q);
      for (int64_t i = 0; i < count; ++i) {
        seed = seed * 1664525u + 1013904223u;
        const float v = (static_cast<float>(seed >> 8) / 16777216.0f - 0.5f) * 8.0f;
        all[q][i] = Widen(Narrow(v, t), t);
      }
    }
    for (int64_t i = 0; i < count; ++i) x[i] = Narrow(all[r][i], t);
    const std::string what = StrCat("all_reduce ", name, " random");
    if (ck.Ok(Await(c.AllReduce(x.data(), count, t, ReduceOp::kSum)), what)) {
      ex.bytes["all_reduce"] += 2 * (n - 1) * count * 2 / n;
      const int mantissa = t == DType::kBFloat16 ? 8 : 11;
      int64_t exact = 0;
      for (int64_t i = 0; i < count; ++i) {
        double sum = 0, mag = 0;
        for (int q = 0; q < n; ++q) {
          sum += all[q][i];
          mag += std::fabs(all[q][i]);
        }
        const double bound = 0.5 * (n - 1) * std::ldexp(1.0, std::ilogb(std::max(mag, 1e-3)) - mantissa + 1) +
                             0.5 * std::ldexp(1.0, std::ilogb(std::max(std::fabs(sum), 1e-3)) - mantissa + 1);
        const double got = Widen(x[i], t);
        exact += x[i] == Narrow(static_cast<float>(sum), t);
        if (!ck.Expect(std::fabs(got - sum) <= bound, StrCat(what, ": [", i, "] = ", got, ", exact ", sum, ", bound ", bound)))
          break;
      }
      if (n == 2) ck.Expect(exact == count, StrCat(what, ": with 2 ranks every element is round(x0 + x1): ", exact));
      // Every rank holds the same bits: gather everyone's result (2-byte words) and compare.
      std::vector<uint16_t> gathered(static_cast<size_t>(n * count));
      if (ck.Ok(Await(c.AllGather(x.data(), gathered.data(), count, t)), what + " gather")) {
        ex.bytes["all_gather"] += (n - 1) * n * count * 2 / n;
        for (int q = 0; q < n; ++q)
          ck.Expect(std::equal(x.begin(), x.end(), gathered.begin() + q * count), StrCat(what, ": rank ", q, " differs"));
      }
    }
  }
}

void CheckBroadcast(Communicator& c, Checker& ck, Expected& ex) {
  const int r = c.rank(), n = c.size();
  for (int root = 0; root < n; ++root) {
    for (int64_t count : {int64_t{0}, int64_t{1}, int64_t{1000}}) {
      std::vector<float> f(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) f[i] = r == root ? static_cast<float>(root * 7 + i) : -1.f;
      const std::string what = StrCat("broadcast from ", root, " count ", count);
      if (!ck.Ok(Await(c.Broadcast(f.data(), count, DType::kFloat32, root)), what)) continue;
      if (r == root) ex.bytes["broadcast"] += count * 4;
      for (int64_t i = 0; i < count; ++i)
        if (!ck.Expect(f[i] == static_cast<float>(root * 7 + i), StrCat(what, ": [", i, "] = ", f[i]))) break;
    }
    int64_t q = r == root ? (int64_t{1} << 60) + root : 0;
    if (ck.Ok(Await(c.Broadcast(&q, 1, DType::kInt64, root)), "broadcast int64")) {
      if (r == root) ex.bytes["broadcast"] += 8;
      ck.Expect(q == (int64_t{1} << 60) + root, StrCat("broadcast int64 from ", root, " = ", q));
    }
  }
  float x = 0;
  auto bad = c.Broadcast(&x, 1, DType::kFloat32, n);
  ck.Expect(!bad.ok(), "broadcast from a root outside the group is an error");
}

// The last rank fails in the way `mode` says while every other rank waits in an all-reduce and
// takes dsrun's error path (Abort) when its wait fails.
int InjectFailure(Communicator& c, const std::string& mode) {
  const int r = c.rank(), victim = c.size() - 1;
  if (r != victim) {
    std::vector<float> buf(1000, 1.f);
    Status s = Await(c.AllReduce(buf.data(), 1000, DType::kFloat32, ReduceOp::kSum));
    if (!s.ok()) c.Abort(StrCat("comm_mpi_check: ", s.message()), 1);
    std::cerr << "rank " << r << ": the all-reduce completed although rank " << victim << " never joined it\n";
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));  // let the others block first
  if (mode == "abort") c.Abort(StrCat("rank ", r, ": injected failure"), 3);
  if (mode == "exit") {
    std::cerr << "rank " << r << ": exiting with status 3 in the middle of the job" << std::endl;
    std::exit(3);
  }
  if (mode == "kill") {
    std::cerr << "rank " << r << ": killing itself" << std::endl;
    std::raise(SIGKILL);
  }
  if (mode == "hang") {
    std::cerr << "rank " << r << ": hanging" << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(600));
    return 1;
  }
  std::cerr << "unknown --fail mode '" << mode << "' (abort, exit, kill, hang)\n";
  return 2;
}

// comms_logger's records (communicator.h CollectiveRecord): kept while a log is attached.
class RecordingLog : public CollectiveLog {
 public:
  void Record(const CollectiveRecord& r) override { records.push_back(r); }
  std::vector<CollectiveRecord> records;
};

// Every collective the checks issued was recorded once: per kind the records' bytes add up to
// bytes_sent(), each record's bytes are the model's for its message size, and each took time.
void CheckCollectiveLog(Communicator& c, Checker& ck, const RecordingLog& log) {
  const int n = c.size();
  std::map<std::string, int64_t> bytes, calls;
  for (const CollectiveRecord& r : log.records) {
    const std::string kind = r.kind;
    bytes[kind] += r.bytes_sent;
    ++calls[kind];
    ck.Expect(r.latency_s > 0 && r.latency_s < 60, StrCat(kind, " record's latency ", r.latency_s));
    int64_t want = -1;
    if (kind == "all_reduce") want = 2 * (n - 1) * r.msg_bytes / n;
    if (kind == "reduce_scatter" || kind == "all_gather") want = (n - 1) * r.msg_bytes;  // msg = one block
    if (kind == "broadcast") want = r.bytes_sent == 0 ? 0 : r.msg_bytes;  // the root sends its buffer
    if (kind == "all_to_all") want = (n - 1) * r.msg_bytes / n;  // msg = the whole send buffer
    ck.Expect(r.bytes_sent == want, StrCat(kind, " of ", r.msg_bytes, " bytes recorded ", r.bytes_sent, " sent, want ", want));
  }
  for (const auto& [kind, sent] : c.bytes_sent())
    ck.Expect(bytes[kind] == sent, StrCat("records of ", kind, " sent ", bytes[kind], ", bytes_sent() ", sent));
  for (const auto& [kind, n_calls] : c.calls())
    ck.Expect(calls[kind] == n_calls, StrCat(calls[kind], " records of ", kind, ", calls() ", n_calls));
}

int Main(int argc, char** argv) {
  std::string fail;
  MpiCommunicatorOptions options;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--fail=", 7) == 0) {
      fail = argv[i] + 7;
    } else if (std::strcmp(argv[i], "--ring") == 0) {
      options.ring_min_bytes = 0;
      options.ring_segment_bytes = 64;
    } else {
      std::cerr << "usage: comm_mpi_check [--ring] [--fail=abort|exit|kill|hang]  (run under mpirun)\n";
      return 2;
    }
  }
  StatusOr<std::unique_ptr<Communicator>> comm = CreateMpiCommunicator(options);
  if (!comm.ok()) {
    std::cerr << "comm_mpi_check: " << comm.status().message() << "\n";
    return 2;
  }
  Communicator& c = **comm;
  if (!fail.empty()) return InjectFailure(c, fail);

  Checker ck(c.rank());
  Expected ex;
  ck.Expect(LaunchedUnderMpi(), "LaunchedUnderMpi() under mpirun");
  ck.Expect(LauncherWorldSize() == c.size(), StrCat("LauncherWorldSize() ", LauncherWorldSize(), " vs ", c.size()));
  ck.Expect(c.rank() >= 0 && c.rank() < c.size() && c.size() > 1, StrCat("rank ", c.rank(), " of ", c.size()));
  RecordingLog log;
  c.set_collective_log(&log);
  CheckAllReduce(c, ck, ex);
  CheckHalfReductions(c, ck, ex);
  CheckReduceScatter(c, ck, ex);
  CheckAllToAll(c, ck, ex);
  CheckAllGather(c, ck, ex);
  CheckBroadcast(c, ck, ex);
  ck.Ok(c.FlushCollectiveLog(), "flush the collective log");
  c.set_collective_log(nullptr);
  CheckCollectiveLog(c, ck, log);
  const size_t recorded = log.records.size();
  ck.Ok(c.Barrier(), "barrier");
  for (const auto& [kind, bytes] : c.bytes_sent())
    ck.Expect(ex.bytes[kind] == bytes, StrCat("bytes_sent[", kind, "] = ", bytes, ", want ", ex.bytes[kind]));
  ck.Expect(c.bytes_sent().size() == 5, "bytes_sent has the five kinds");
  int64_t one = 1;
  ck.Ok(Await(c.AllReduce(&one, 1, DType::kInt64, ReduceOp::kSum)), "all_reduce with the log detached");
  ck.Expect(log.records.size() == recorded, "nothing is recorded once the log is detached");

  // Every rank learns the total, so every rank exits with the same status.
  int64_t failures = ck.failures();
  if (!ck.Ok(Await(c.AllReduce(&failures, 1, DType::kInt64, ReduceOp::kSum)), "failure count")) return 1;
  if (c.rank() == 0) {
    std::cout << "comm_mpi_check: " << c.size() << " ranks" << (options.ring_min_bytes == 0 ? " (rings)" : "") << ": "
              << (failures == 0 ? "every collective matches its formula" : StrCat(failures, " checks failed"));
    std::cout << "; rank 0 sent";
    for (const auto& [kind, bytes] : c.bytes_sent()) std::cout << " " << kind << "=" << bytes;
    std::cout << std::endl;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace dsc

int main(int argc, char** argv) { return dsc::Main(argc, argv); }

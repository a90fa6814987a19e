// ONNX's type constraints as shape inference checks them (ir/type_constraints.h): half types pass
// where the schema admits float, as PyTorch's half exports need; every other mismatch is refused
// with the node, the input and the types the op takes.
#include <gtest/gtest.h>

#include "ir/shape_inference.h"
#include "ir/text.h"

namespace dsc {
namespace {

std::string Header(int opset) { return "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]>\n"; }

// A Conv and a MaxPool on `x_type` data with `w_type` weights, at `opset`.
std::string ConvPool(int opset, const std::string& x_type, const std::string& w_type) {
  return Header(opset) + "main (" + x_type + "[1,2,5,5] x, " + w_type + "[3,2,3,3] w) => (y)\n{\n" +
         "  [conv] c = Conv <pads = [1,1,1,1]> (x, w)\n  [pool] y = MaxPool <kernel_shape = [2,2]> (c)\n}\n";
}

Status Infer(const std::string& text) {
  StatusOr<std::unique_ptr<Graph>> g = ParseGraph(text);
  EXPECT_TRUE(g.ok()) << g.status().ToString() << "\n" << text;
  if (!g.ok()) return g.status();
  Status s = InferShapes(**g);
  if (s.ok()) {
    const Value* y = (*g)->FindValue("y");
    EXPECT_TRUE(y && y->type.shape && y->type.shape->size() == 4) << text;
  }
  return s;
}

TEST(TypeConstraints, HalfWhereFloatIsAdmitted) {
  // ONNX admits bfloat16 Conv and MaxPool from opset 22 on; PyTorch writes them at 18 and 20.
  for (int opset : {18, 20, 22})
    for (const char* t : {"bfloat16", "float16", "float"}) EXPECT_TRUE(Infer(ConvPool(opset, t, t)).ok()) << opset << " " << t;
}

TEST(TypeConstraints, OtherMismatchesAreRefused) {
  Status s = Infer(ConvPool(20, "int64", "int64"));
  ASSERT_FALSE(s.ok());
  for (const char* part : {"node 'conv' (Conv)", "input 0 ('X', value 'x')", "tensor(int64)", "Conv-11",
                           "tensor(float)"})
    EXPECT_NE(s.message().find(part), std::string::npos) << part << " not in: " << s.message();
  // One type parameter, two types: even two float types are not the same type.
  s = Infer(ConvPool(20, "bfloat16", "float"));
  ASSERT_FALSE(s.ok());
  for (const char* part : {"node 'conv' (Conv)", "input 1 ('W', value 'w') is tensor(float)",
                           "input 0 ('X', value 'x') is tensor(bfloat16)", "type T"})
    EXPECT_NE(s.message().find(part), std::string::npos) << part << " not in: " << s.message();
  s = Infer(Header(20) + "main (float[2] a, int64[2] b) => (y)\n{\n  [add] y = Add (a, b)\n}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("node 'add' (Add)"), std::string::npos) << s.message();
  // Half is admitted only where float is: Shape's output is int64, whatever the input.
  s = Infer(Header(20) + "main (float[2] a) => (y)\n{\n  [sh] s = Shape (a)\n  [neg] y = Not (s)\n}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("node 'neg' (Not)"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace dsc

// CPU check of the TensorRT adapter (no GPU, no libnvinfer): compiled and run by tests/test_export.py
// when TensorRT headers are found. The CUDA side is replaced by stubs, so only RotatedNMSPlugin.cpp is tested:
// creator lookup data, field parsing, missing-field / bad-value errors, output types, format combinations,
// and the serialisation round trip (getFieldsToSerialize -> createPlugin at the runtime phase).
#include "RotatedNMSPlugin.h"
#include <cstdio>
#include <cstring>
using namespace nvinfer1;
namespace rdet { namespace trt {  // the CUDA side is replaced: this checks the TensorRT adapter only
int32_t candidate_count(NMSShape, NMSConfig) { return 0; }
size_t workspace_size(NMSShape, NMSConfig) { return 0; }
cudaError_t rotated_nms(NMSShape, NMSConfig, ScalarType, ScalarType, void const*, void const*, int32_t*, void*, void*,
                        int32_t*, void*, size_t, cudaStream_t) { return cudaSuccess; }
}}
extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
#define CHECK(c) do { if (!(c)) { std::printf("FAIL line %d: %s\n", __LINE__, #c); return 1; } } while (0)
int main() {
  int32_t n = 0;
  auto* const* cs = getCreators(n);
  CHECK(n == 1 && std::strcmp(cs[0]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
  auto* cr = static_cast<IPluginCreatorV3One*>(cs[0]);
  CHECK(!std::strcmp(cr->getPluginName(), "RotatedNMS") && !std::strcmp(cr->getPluginNamespace(), "rdet") &&
        !std::strcmp(cr->getPluginVersion(), "1"));
  float iou = 0.25f, sc = 0.3f; int32_t md = 50, k = 200, ag = 1, bad = 0;
  PluginField f[5] = {{"iou_threshold", &iou, PluginFieldType::kFLOAT32, 1},
                      {"score_threshold", &sc, PluginFieldType::kFLOAT32, 1},
                      {"max_det", &md, PluginFieldType::kINT32, 1}, {"pre_nms_topk", &k, PluginFieldType::kINT32, 1},
                      {"class_agnostic", &ag, PluginFieldType::kINT32, 1}};
  PluginFieldCollection fc{5, f}, fc4{4, f};
  IPluginV3* p = cr->createPlugin("nms", &fc, TensorRTPhase::kBUILD);
  CHECK(p != nullptr);
  CHECK(cr->createPlugin("nms", &fc4, TensorRTPhase::kBUILD) == nullptr);  // missing field: error, no default
  PluginField f2[5] = {f[0], f[1], {"max_det", &bad, PluginFieldType::kINT32, 1}, f[3], f[4]};
  PluginFieldCollection fcb{5, f2};
  CHECK(cr->createPlugin("nms", &fcb, TensorRTPhase::kBUILD) == nullptr);
  auto* build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
  CHECK(build->getNbOutputs() == 4);
  DataType in[2] = {DataType::kHALF, DataType::kFLOAT}, out[4];
  CHECK(build->getOutputDataTypes(out, 4, in, 2) == 0);
  CHECK(out[0] == DataType::kINT32 && out[1] == DataType::kHALF && out[2] == DataType::kFLOAT &&
        out[3] == DataType::kINT32);
  DynamicPluginTensorDesc d[6] = {};
  DataType types[6] = {DataType::kHALF, DataType::kFLOAT, DataType::kINT32, DataType::kHALF, DataType::kFLOAT,
                       DataType::kINT32};
  for (int i = 0; i < 6; ++i) { d[i].desc.type = types[i]; d[i].desc.format = TensorFormat::kLINEAR; }
  for (int i = 0; i < 6; ++i) CHECK(build->supportsFormatCombination(i, d, 2, 4));
  d[3].desc.type = DataType::kFLOAT; CHECK(!build->supportsFormatCombination(3, d, 2, 4));
  d[0].desc.type = DataType::kINT32; CHECK(!build->supportsFormatCombination(0, d, 2, 4));
  IPluginV3* c = p->clone();
  auto* rt = static_cast<IPluginV3OneRuntime*>(c->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  PluginFieldCollection const* ser = rt->getFieldsToSerialize();
  CHECK(ser->nbFields == 5);
  CHECK(*static_cast<float const*>(ser->fields[0].data) == 0.25f);
  CHECK(*static_cast<int32_t const*>(ser->fields[4].data) == 1);
  IPluginV3* r = cr->createPlugin("nms", ser, TensorRTPhase::kRUNTIME);  // the deserialisation path
  CHECK(r != nullptr);
  delete p; delete c; delete r;
  std::printf("OK\n");
  return 0;
}

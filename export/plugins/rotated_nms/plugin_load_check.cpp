// CPU check of the BUILT plugin library (no GPU, no libnvinfer): tests/test_export_plugin.py compiles it
// against TensorRT's public headers and runs it on the .so that CMake built.
//   g++ -std=c++17 -rdynamic -isystem <TensorRT include> plugin_load_check.cpp -ldl -o check
//   ./check librdet_rotated_nms_plugin.so
// The harness plays TensorRT's part: it exports getPluginRegistry (found by the library's load-time
// registration through dlsym) returning an in-process registry that behaves as the documented
// IPluginRegistry does (registerCreator fails on a duplicate; loadLibrary dlopens, calls getCreators, and
// fails if any creator is already registered). These stand-ins live here only, never in the library.
// Checked: dlopen of the .so, load-time registration in namespace "rdet", loadLibrary after and before a
// plain dlopen, a second loadLibrary refused (why runtime.py loads once), then the creator through the
// library: field parsing, NaN/missing/bad fields refused, float32-only formats, output shapes/types,
// workspace size, serialisation round trip, and errors reaching the logger given by setLoggerFinder.
#include <NvInferRuntime.h>
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace {

int gFailures = 0;
#define CHECK(c)                                                       \
  do {                                                                 \
    if (!(c)) {                                                        \
      std::printf("FAIL line %d: %s\n", __LINE__, #c);                 \
      ++gFailures;                                                     \
    }                                                                  \
  } while (0)

std::string key(IPluginCreatorInterface* c) {
  auto* v3 = static_cast<IPluginCreatorV3One*>(c);
  return std::string(v3->getPluginNamespace()) + "::" + v3->getPluginName() + "/" + v3->getPluginVersion();
}

class FakeRegistry : public IPluginRegistry {
 public:
  struct Entry {
    IPluginCreatorInterface* creator;
    std::string ns;
  };
  std::vector<Entry> entries;
  int registerCalls = 0, deregisterCalls = 0;

  bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const ns) noexcept override {
    ++registerCalls;
    for (auto const& e : entries)
      if (key(e.creator) == key(&creator)) return false;  // TensorRT refuses a duplicate
    entries.push_back({&creator, ns});
    return true;
  }
  bool deregisterCreator(IPluginCreatorInterface const& creator) noexcept override {
    ++deregisterCalls;
    for (size_t i = 0; i < entries.size(); ++i)
      if (entries[i].creator == &creator) {
        entries.erase(entries.begin() + static_cast<long>(i));
        return true;
      }
    return false;
  }
  IPluginCreatorInterface* getCreator(AsciiChar const* const name, AsciiChar const* const version,
                                      AsciiChar const* const ns) noexcept override {
    for (auto const& e : entries)
      if (key(e.creator) == std::string(ns) + "::" + name + "/" + version) return e.creator;
    return nullptr;
  }
  PluginLibraryHandle loadLibrary(AsciiChar const* path) noexcept override {
    void* handle = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
    if (handle == nullptr) return nullptr;
    using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
    auto get = reinterpret_cast<GetCreators>(dlsym(handle, "getCreators"));
    if (get == nullptr) return nullptr;
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = get(n);
    for (int32_t i = 0; i < n; ++i)  // "fails and returns nullptr if any of the plugins are already registered"
      for (auto const& e : entries)
        if (key(e.creator) == key(creators[i])) return nullptr;
    for (int32_t i = 0; i < n; ++i) entries.push_back({creators[i], static_cast<IPluginCreatorV3One*>(creators[i])->getPluginNamespace()});
    return handle;
  }
  void deregisterLibrary(PluginLibraryHandle) noexcept override {}
  void setErrorRecorder(IErrorRecorder* const) noexcept override {}
  IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
  bool isParentSearchEnabled() const override { return true; }
  void setParentSearchEnabled(bool const) override {}
  IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override {
    *n = 0;
    return nullptr;
  }
  IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept override { return nullptr; }
  int32_t releasePluginResource(AsciiChar const*) noexcept override { return 0; }
  // Present in some header versions only: declared without `override` so the harness builds with each.
  virtual IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept {
    *n = 0;
    return nullptr;
  }
#if NV_TENSORRT_MAJOR < 11  // IPluginV2-era methods, removed in TensorRT 11
  bool registerCreator(IPluginCreator&, AsciiChar const* const) noexcept override { return false; }
  IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override {
    *n = 0;
    return nullptr;
  }
  IPluginCreator* getPluginCreator(AsciiChar const* const, AsciiChar const* const,
                                   AsciiChar const* const) noexcept override {
    return nullptr;
  }
  bool deregisterCreator(IPluginCreator const&) noexcept override { return false; }
#endif
};

FakeRegistry gRegistry;

class CapturingLogger : public ILogger {
 public:
  std::string last;
  void log(Severity severity, AsciiChar const* msg) noexcept override {
    if (severity <= Severity::kERROR) last = msg;
  }
};

class Finder : public ILoggerFinder {
 public:
  explicit Finder(ILogger* l) : logger(l) {}
  ILogger* findLogger() noexcept override { return logger; }
  ILogger* logger;
};

DynamicPluginTensorDesc desc(DataType type, std::vector<int64_t> const& max) {
  DynamicPluginTensorDesc d{};
  d.desc.type = type;
  d.desc.format = TensorFormat::kLINEAR;
  d.max.nbDims = d.min.nbDims = d.opt.nbDims = d.desc.dims.nbDims = static_cast<int32_t>(max.size());
  for (size_t i = 0; i < max.size(); ++i) {
    d.max.d[i] = d.min.d[i] = d.opt.d[i] = max[i];
    d.desc.dims.d[i] = -1;
  }
  return d;
}

size_t workspace(IPluginV3OneBuild* build, int64_t b, int64_t n, int64_t c) {
  DynamicPluginTensorDesc in[2] = {desc(DataType::kFLOAT, {b, n, 5}), desc(DataType::kFLOAT, {b, n, c})};
  return build->getWorkspaceSize(in, 2, nullptr, 4);
}

void checkCreator(IPluginCreatorV3One* cr) {
  float iou = 0.25f, sc = 0.3f, nan = std::numeric_limits<float>::quiet_NaN();
  int32_t md = 50, k = 2000, ag = 1, zero = 0, huge = 20000;
  PluginField f[5] = {{"iou_threshold", &iou, PluginFieldType::kFLOAT32, 1},
                      {"score_threshold", &sc, PluginFieldType::kFLOAT32, 1},
                      {"max_det", &md, PluginFieldType::kINT32, 1},
                      {"pre_nms_topk", &k, PluginFieldType::kINT32, 1},
                      {"class_agnostic", &ag, PluginFieldType::kINT32, 1}};
  PluginFieldCollection fc{5, f};
  IPluginV3* p = cr->createPlugin("nms", &fc, TensorRTPhase::kBUILD);
  CHECK(p != nullptr);
  if (p == nullptr) return;
  PluginFieldCollection fc4{4, f};
  CHECK(cr->createPlugin("nms", &fc4, TensorRTPhase::kBUILD) == nullptr);  // missing field: error, no default
  for (int which = 0; which < 4; ++which) {  // NaN thresholds, max_det 0, pre_nms_topk past the limit
    PluginField g[5] = {f[0], f[1], f[2], f[3], f[4]};
    if (which == 0) g[0].data = &nan;
    if (which == 1) g[1].data = &nan;
    if (which == 2) g[2].data = &zero;
    if (which == 3) g[3].data = &huge;
    PluginFieldCollection bad{5, g};
    CHECK(cr->createPlugin("nms", &bad, TensorRTPhase::kBUILD) == nullptr);
  }
  auto* build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
  CHECK(build->getNbOutputs() == 4);
  DataType out[4];
  DataType f32[2] = {DataType::kFLOAT, DataType::kFLOAT}, f16box[2] = {DataType::kHALF, DataType::kFLOAT},
           f16score[2] = {DataType::kFLOAT, DataType::kHALF};
  CHECK(build->getOutputDataTypes(out, 4, f32, 2) == 0);
  CHECK(out[0] == DataType::kINT32 && out[1] == DataType::kFLOAT && out[2] == DataType::kFLOAT &&
        out[3] == DataType::kINT32);
  CHECK(build->getOutputDataTypes(out, 4, f16box, 2) != 0);  // fp16 boxes refused
  CHECK(build->getOutputDataTypes(out, 4, f16score, 2) != 0);
  DynamicPluginTensorDesc d[6] = {};
  DataType types[6] = {DataType::kFLOAT, DataType::kFLOAT, DataType::kINT32,
                       DataType::kFLOAT, DataType::kFLOAT, DataType::kINT32};
  for (int i = 0; i < 6; ++i) {
    d[i].desc.type = types[i];
    d[i].desc.format = TensorFormat::kLINEAR;
  }
  for (int i = 0; i < 6; ++i) CHECK(build->supportsFormatCombination(i, d, 2, 4));
  for (int i : {0, 1, 3, 4}) {  // every float tensor: fp16 refused
    d[i].desc.type = DataType::kHALF;
    CHECK(!build->supportsFormatCombination(i, d, 2, 4));
    d[i].desc.type = DataType::kFLOAT;
  }
  d[2].desc.type = DataType::kFLOAT;
  CHECK(!build->supportsFormatCombination(2, d, 2, 4));
  // Workspace: K = min(pre_nms_topk, N*C) entries per image, never N*C (one 1024 px image, 15 classes:
  // N*C = 2.95 M scores); monotone in B and N*C, so a profile's largest shape covers the others.
  size_t const w1 = workspace(build, 1, 196416, 15), w2 = workspace(build, 2, 196416, 15);
  std::printf("workspace bytes: B=1 %zu, B=2 %zu, B=1 N*C=30 %zu\n", w1, w2, workspace(build, 1, 10, 3));
  CHECK(w1 > 0 && w1 < (1u << 20) && w2 > w1 && w2 <= 2 * w1 + 4096);
  CHECK(workspace(build, 1, 10, 3) < w1 && workspace(build, 1, 196416, 1) <= w1);
  IPluginV3* c = p->clone();
  auto* rt = static_cast<IPluginV3OneRuntime*>(c->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  PluginFieldCollection const* ser = rt->getFieldsToSerialize();
  CHECK(ser->nbFields == 5);
  CHECK(*static_cast<float const*>(ser->fields[0].data) == 0.25f);
  CHECK(*static_cast<int32_t const*>(ser->fields[3].data) == 2000);
  CHECK(*static_cast<int32_t const*>(ser->fields[4].data) == 1);
  IPluginV3* r = cr->createPlugin("nms", ser, TensorRTPhase::kRUNTIME);  // the deserialisation path
  CHECK(r != nullptr);
  delete p;
  delete c;
  delete r;
}

}  // namespace

// TensorRT's entry point, found by the library's load-time registration (dlsym(RTLD_DEFAULT)).
extern "C" IPluginRegistry* getPluginRegistry() noexcept { return &gRegistry; }

int main(int argc, char** argv) {
  if (argc < 3) {
    std::printf("usage: plugin_load_check LIB static|dynamic\n");
    return 2;
  }
  char const* lib = argv[1];
  std::string const mode = argv[2];
  char const* const name = "rdet::RotatedNMS/1";
  if (mode == "static") {  // dlopen first (Triton plugins=, --staticPlugins, ctypes.CDLL), then loadLibrary
    void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    CHECK(h != nullptr);
    if (h == nullptr) {
      std::printf("dlopen: %s\n", dlerror());
      return 1;
    }
    CHECK(dlsym(h, "getCreators") != nullptr && dlsym(h, "setLoggerFinder") != nullptr);
    CHECK(gRegistry.entries.size() == 1 && key(gRegistry.entries[0].creator) == name);
    CHECK(!gRegistry.entries.empty() && gRegistry.entries[0].ns == "rdet");
    CHECK(gRegistry.getCreator("RotatedNMS", "1", "rdet") != nullptr);
    CHECK(gRegistry.loadLibrary(lib) != nullptr);  // getCreators withdrew the load-time registration first
    CHECK(gRegistry.entries.size() == 1 && gRegistry.deregisterCalls == 1);
  } else {  // loadLibrary first (load_library in Python, trtexec --dynamicPlugins)
    CHECK(gRegistry.loadLibrary(lib) != nullptr);
    CHECK(gRegistry.entries.size() == 1 && key(gRegistry.entries[0].creator) == name);
    CHECK(gRegistry.registerCalls == 1 && gRegistry.deregisterCalls == 1);  // the load-time one, withdrawn
  }
  CHECK(gRegistry.loadLibrary(lib) == nullptr);  // a second load is refused, as TensorRT refuses it
  CHECK(gRegistry.entries.size() == 1);
  auto* cr = static_cast<IPluginCreatorV3One*>(gRegistry.getCreator("RotatedNMS", "1", "rdet"));
  CHECK(cr != nullptr && std::strcmp(cr->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
  if (cr == nullptr) return 1;
  CapturingLogger logger;
  Finder finder(&logger);
  void* h = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
  using SetLoggerFinder = void (*)(ILoggerFinder*);
  reinterpret_cast<SetLoggerFinder>(dlsym(h, "setLoggerFinder"))(&finder);
  checkCreator(cr);
  CHECK(logger.last.find("RotatedNMS") != std::string::npos);  // the refusals above were logged
  std::printf("last logged error: %s\n", logger.last.c_str());
  if (gFailures == 0) std::printf("OK\n");
  return gFailures == 0 ? 0 : 1;
}

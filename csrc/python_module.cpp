// The Python module nofa._C (built by setup.py only). Importing it loads this shared
// library, whose static TORCH_LIBRARY registrations make torch.ops.nofa.* available.
#include <Python.h>

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "nofa's C++/CUDA ops", -1,
                                          nullptr};
  return PyModule_Create(&module_def);
}
}

// rcq_src.cpp: the one source file of a program built with
// RCQ_SEPARATE_COMPILATION that defines rcq's set-up functions. Every
// translation unit of the program, this one included, is compiled with
// -DRCQ_SEPARATE_COMPILATION; the others include rcq's headers as usual and
// compile faster, since they no longer define those functions themselves.
#include <rcq/impl/src.hpp>

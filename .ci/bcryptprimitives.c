/* A stand-in for Windows' bcryptprimitives.dll, for running Rust-built .exe files under Wine 8.
 *
 * Rust's standard library (1.78 and later) asks bcryptprimitives.dll for ProcessPrng to seed
 * HashMap; Wine 8 (Debian 12's) has no such DLL, so every .exe exits with status 53 before main.
 * This stub fills the buffer from RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 * Windows 10 and later ship the real DLL: this file is for the CI's Wine runner only (.ci/windows).
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a ULONG: fill larger buffers in pieces. */
    while (length > 0) {
        ULONG piece = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, piece))
            return FALSE;
        data += piece;
        length -= piece;
    }
    return TRUE;
}
